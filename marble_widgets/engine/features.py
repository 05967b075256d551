"""MARBLE's linear feature stack: iterated directional derivatives (docs/spec.md §7.3-7.4).

Layout (order-major, interleaved): ``[F0, F1, ..., Fp]`` with ``F0`` the signal (if
``include_self``), ``F1 = [d1 f1, ..., dd' f1, d1 f2, ...]`` and ``F_q`` taking each channel of
``F_{q-1}`` in turn and appending its d' derivatives. With local gauges the signal is first
expressed in the frames (``u_i = T_i^T v_i``) and the covariant block kernels act on the
component index (the derivative-direction index is not transported, §14 item 17, as the
reference).

One operator: the geometry's sparse kernels ``K^c`` (:mod:`~marble_widgets.engine.kernels`),
applied by :func:`derivative_stack` as torch sparse products, differentiable in the signal (the
diffusion time is learned through it) and used for precomputed features alike.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

if TYPE_CHECKING:
    from marble_widgets.engine.geometry import Geometry

DEFAULT_MAX_BYTES = 2 * 1024**3


def feature_count(n_signal: int, n_directions: int, order: int, include_self: bool = True) -> int:
    """Number of derivative features ``s * sum_{q=0..p} d'^q`` (minus s without self), §7.4.

    Why: size the MLP input and refuse explosive configurations up front; no division, so
    ``d' = 1`` and ``s = 1`` are fine (§14 item 6).
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order!r}.")
    total = n_signal * sum(n_directions**q for q in range(order + 1))
    return int(total - (0 if include_self else n_signal))


def feature_coords(
    n_signal: int, n_directions: int, order: int, include_self: bool = True
) -> dict[str, np.ndarray]:
    """Per feature in layout order: ``order`` (q), ``component`` (0-based signal channel) and
    ``direction`` (derivative labels outermost first, e.g. "d2 d1"; "" for q = 0).

    Why: views select features by these coordinates instead of parsing names.
    """
    rows = [(0, a, ()) for a in range(n_signal)]  # (order, component, directions innermost last)
    out = list(rows) if include_self else []
    for _ in range(order):
        rows = [(q + 1, a, (c, *dirs)) for q, a, dirs in rows for c in range(n_directions)]
        out.extend(rows)
    return {
        "order": np.array([q for q, _, _ in out], dtype=np.int64),
        "component": np.array([a for _, a, _ in out], dtype=np.int64),
        "direction": np.array([" ".join(f"d{c + 1}" for c in dirs) for _, _, dirs in out], dtype=object),
    }


def feature_names(
    n_signal: int,
    n_directions: int,
    order: int,
    include_self: bool = True,
    signal_names: list[str] | None = None,
) -> list[str]:
    """Readable names of the features in layout order: "v1", "d1 v1", "d2 d1 v1", ...

    Why: the FlowFieldExplorer labels the ``feature`` coordinate with them (design.md).
    ``d{c}`` is the c-th derivative direction (ambient axis or tangent direction).
    """
    if signal_names is None:
        signal_names = [f"v{a + 1}" for a in range(n_signal)]
    if len(signal_names) != n_signal:
        raise ValueError(f"signal_names has {len(signal_names)} entries, expected n_signal={n_signal}.")
    coords = feature_coords(n_signal, n_directions, order, include_self)
    return [f"{d} {signal_names[a]}" if d else str(signal_names[a])
            for d, a in zip(coords["direction"], coords["component"])]


def check_feature_size(
    n_nodes: int, n_features: int, n_pieces: int = 1, max_bytes: int = DEFAULT_MAX_BYTES
) -> None:
    """Raise a ValueError when the feature array would exceed ``max_bytes`` (§14 item 15)."""
    need = 8 * n_nodes * n_features * n_pieces
    if need > max_bytes:
        raise ValueError(
            f"the feature array would need {need / 1024**3:.1f} GiB ({n_nodes} nodes x "
            f"{n_features} features" + (f" x {n_pieces} Chebyshev pieces" if n_pieces > 1 else "")
            + f"), above max_bytes={max_bytes / 1024**3:.1f} GiB. Reduce the signal with PCA first "
            "(~5-20 components), lower `order`, subsample with `spacing`, or lower the "
            "Chebyshev degree."
        )


def signal_in_frames(geometry: Geometry, signal: np.ndarray | None = None) -> np.ndarray:
    """The signal the derivatives act on, (N, s): ambient, or ``u_i = T_i^T f_i`` with local gauges.

    ``signal=None`` uses ``geometry.signal``; another signal must have one row per node (and,
    with local gauges, ambient columns).
    """
    sig = geometry.signal if signal is None else np.asarray(signal, dtype=float)
    if sig.ndim == 1:
        sig = sig[:, None]
    if sig.shape[0] != len(geometry.pos):
        raise ValueError(
            f"signal has {sig.shape[0]} rows but the geometry has {len(geometry.pos)} nodes."
        )
    if not geometry.local_gauges:
        return np.asarray(sig, dtype=float)
    if sig.shape[1] != geometry.frames.shape[1]:
        raise ValueError(
            f"local gauges need a signal in the ambient space (s = n = {geometry.frames.shape[1]}),"
            f" got s = {sig.shape[1]}; use local_gauges=False for this signal."
        )
    return np.einsum("nk,nkd->nd", sig, geometry.frames)


class _SparseProduct(torch.autograd.Function):
    """``K @ x`` for a constant sparse ``K`` whose transpose is given (fast backward ``K^T g``)."""

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, transpose: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.transpose = transpose
        return matrix @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, ctx.transpose @ grad


def _torch_csr(matrix: sp.spmatrix, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A scipy matrix as a torch sparse CSR tensor (int32 indices when they fit)."""
    m = sp.csr_matrix(matrix)
    itype = np.int32 if m.nnz < 2**31 else np.int64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.as_tensor(m.indptr.astype(itype)), torch.as_tensor(m.indices.astype(itype)),
            torch.as_tensor(m.data, dtype=dtype), size=m.shape, device=device,
        )


class DerivativeOperator:
    """The d' directional-derivative kernels of a geometry as torch sparse matrices.

    Why: one operator for every path (precomputed features, diffused features with a learnable
    time). ``K^c`` is N x N (global gauge) or the N d x N d block kernel (local gauges); with
    ``differentiable=True`` the transposes are kept too, so gradients cost one sparse product.
    """

    def __init__(self, geometry: Geometry, *, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu", differentiable: bool = False) -> None:
        self.n_nodes = geometry.n_nodes
        self.block = geometry.kernels[0].shape[0] // self.n_nodes if geometry.kernels else 1
        self.matrices = [_torch_csr(k, dtype, torch.device(device)) for k in geometry.kernels]
        self.transposes = (
            [_torch_csr(sp.csr_matrix(k).T, dtype, torch.device(device)) for k in geometry.kernels]
            if differentiable else None
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """All directions applied to ``x (N b, w)``; returns ``(N b, w * d')`` (direction fastest)."""
        if self.transposes is None or not torch.is_grad_enabled():
            outs = [m @ x for m in self.matrices]
        else:
            outs = [_SparseProduct.apply(m, t, x) for m, t in zip(self.matrices, self.transposes)]
        return torch.stack(outs, dim=-1).reshape(x.shape[0], -1)


def derivative_stack(
    signal: torch.Tensor, operator: DerivativeOperator, *, order: int, include_self: bool,
    vec_norm: bool = False,
) -> torch.Tensor:
    """``[F^(0) (if include_self), F^(1), ..., F^(p)]`` with ``F^(q) = K F^(q-1)``, shape (N, E).

    ``signal`` is (N, s) in the gauge (:func:`signal_in_frames`). ``vec_norm`` L2-normalises each
    node's row of ``F^(q)`` after every order (zero rows stay 0), as the reference.
    """
    n, b = operator.n_nodes, operator.block
    blocks = [signal] if include_self else []
    cur = signal.reshape(n * b, -1)
    for _ in range(order):
        f = operator(cur).reshape(n, -1)
        if vec_norm:
            f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        blocks.append(f)
        cur = f.reshape(n * b, -1)
    if not blocks:
        return signal.new_zeros((n, 0))
    return torch.cat(blocks, dim=1)


def derivative_features(
    geometry: Geometry,
    signal: np.ndarray | None = None,
    order: int = 2,
    include_self: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    vec_norm: bool = False,
) -> np.ndarray:
    """Derivative features ``[F0, F1, ..., Fp]`` of a signal on the geometry, shape (N, E), float64.

    Why: without diffusion MARBLE's MLP input has no parameters and is computed once (§11
    [ours]). ``signal=None`` uses ``geometry.signal``; with local gauges the signal is projected
    into the frames first.
    """
    sig = signal_in_frames(geometry, signal)
    n_feat = feature_count(sig.shape[1], geometry.n_directions, order, include_self)
    check_feature_size(len(sig), n_feat, 1, max_bytes)
    return stacked_features(sig, geometry, order, include_self, vec_norm)


def stacked_features(sig: np.ndarray, geometry, order: int, include_self: bool, vec_norm: bool) -> np.ndarray:
    """``derivative_stack`` of a signal already in the derivatives' frames, without autograd, as numpy.

    ``geometry`` needs only ``n_nodes`` and ``kernels`` (a condition's diagonal blocks will do).
    """
    with torch.no_grad():
        out = derivative_stack(torch.as_tensor(sig), DerivativeOperator(geometry), order=order,
                               include_self=include_self, vec_norm=vec_norm)
    return out.numpy()
