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

[ours] For ``inner_product_features="invariant"`` the kernels are replaced by least-squares
gradient kernels (:func:`gradient_kernels`), whose derivatives transform exactly as tensors under
an orthogonal change of the ambient axes or of the tangent frames; :func:`order_kernels` gives
each order its kernels (the geometry's for the parity modes).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from marble_widgets.engine.kernels import block_kernels, directional_kernels, edge_projections

if TYPE_CHECKING:
    from marble_widgets.engine.geometry import Geometry

DEFAULT_MAX_BYTES = 2 * 1024**3
#: eigenvalues of a neighbourhood's second-moment matrix below RCOND x its largest are dropped in
#: the least-squares gradient (pseudo-inverse): exactly flat neighbourhoods get no normal derivative
RCOND = 1e-10


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
    ``kernels`` replaces the geometry's (e.g. one order's :func:`order_kernels`).
    """

    def __init__(self, geometry: Geometry, *, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu", differentiable: bool = False,
                 kernels: Sequence[sp.spmatrix] | None = None) -> None:
        kernels = geometry.kernels if kernels is None else kernels
        self.n_nodes = geometry.n_nodes
        self.block = kernels[0].shape[0] // self.n_nodes if kernels else 1
        self.matrices = [_torch_csr(k, dtype, torch.device(device)) for k in kernels]
        self.transposes = (
            [_torch_csr(sp.csr_matrix(k).T, dtype, torch.device(device)) for k in kernels]
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
    signal: torch.Tensor, operator: DerivativeOperator | Sequence[DerivativeOperator], *, order: int,
    include_self: bool, vec_norm: bool = False,
) -> torch.Tensor:
    """``[F^(0) (if include_self), F^(1), ..., F^(p)]`` with ``F^(q) = K F^(q-1)``, shape (N, E).

    ``signal`` is (N, s) in the gauge (:func:`signal_in_frames`). ``operator``: one operator for
    every order, or one per order (:func:`order_operators`); order q reshapes ``F^(q-1)`` into
    rows of its operator's block size. ``vec_norm`` L2-normalises each node's row of ``F^(q)``
    after every order (zero rows stay 0), as the reference.
    """
    ops = list(operator) if isinstance(operator, Sequence) else [operator] * order
    n = signal.shape[0]
    blocks = [signal] if include_self else []
    prev = signal
    for q in range(order):
        f = ops[q](prev.reshape(n * ops[q].block, -1)).reshape(n, -1)
        if vec_norm:
            f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        blocks.append(f)
        prev = f
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
    invariant: bool = False,
) -> np.ndarray:
    """Derivative features ``[F0, F1, ..., Fp]`` of a signal on the geometry, shape (N, E), float64.

    Why: without diffusion MARBLE's MLP input has no parameters and is computed once (§11
    [ours]). ``signal=None`` uses ``geometry.signal``; with local gauges the signal is projected
    into the frames first. ``invariant``: least-squares gradient kernels (:func:`order_kernels`).
    """
    sig = signal_in_frames(geometry, signal)
    n_feat = feature_count(sig.shape[1], geometry.n_directions, order, include_self)
    check_feature_size(len(sig), n_feat, 1, max_bytes)
    return stacked_features(sig, geometry.n_nodes, order_kernels(geometry, order, invariant), include_self, vec_norm)


def stacked_features(sig: np.ndarray, n_nodes: int, kernels: list[list[sp.spmatrix]], include_self: bool,
                     vec_norm: bool) -> np.ndarray:
    """``derivative_stack`` of a signal already in the derivatives' frames, without autograd, as numpy.

    ``kernels``: one list of d' kernels per order (:func:`order_kernels`, or a condition's
    diagonal blocks of them), on ``n_nodes`` nodes.
    """
    with torch.no_grad():
        out = derivative_stack(torch.as_tensor(sig), order_operators(n_nodes, kernels), order=len(kernels),
                               include_self=include_self, vec_norm=vec_norm)
    return out.numpy()


def order_operators(n_nodes: int, kernels: list[list[sp.spmatrix]], **options) -> list[DerivativeOperator]:
    """One :class:`DerivativeOperator` per order of ``kernels`` (orders sharing a kernel list share one).

    ``options``: ``dtype``, ``device``, ``differentiable`` of the operators.
    """
    shape = SimpleNamespace(n_nodes=n_nodes, kernels=[])
    made: dict[int, DerivativeOperator] = {}
    return [made.setdefault(id(ks), DerivativeOperator(shape, kernels=ks, **options)) for ks in kernels]


def order_kernels(geometry: Geometry, order: int, invariant: bool = False) -> list[list[sp.spmatrix]]:
    """The d' kernels each order 1..p applies: the geometry's, or least-squares gradient kernels.

    Why: the reference's kernels are a derivative times a per-axis length scale (§7.1), which is
    not a tensor under rotations; the invariant mode needs derivatives that are. With local
    gauges, order q >= 2 transports every index of the order-(q-1) tensor (blocks
    ``R_ij^{(x)q}``), not only the component (§14 item 17), so that the frames' choice drops out.
    """
    if not invariant:
        return [list(geometry.kernels)] * order
    if not geometry.local_gauges:
        return [gradient_kernels(geometry)] * order
    return [gradient_kernels(geometry, q) for q in range(1, order + 1)]


def gradient_values(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares gradient weights ``w_ij = C_i^+ p_ij`` per edge (E', d') and diagonals (N, d').

    ``p_ij`` are the edge offsets in node i's directions (ambient axes or tangent frame) and
    ``C_i = sum_j p_ij p_ij^T``; then ``sum_j w_ij (g_j - g_i)`` is the least-squares gradient of
    g at i, exact for linear g, and ``C_i^+`` (eigenvalues below :data:`RCOND` x the largest
    dropped) transforms as ``C_i`` does, so the gradient is a vector in i's directions.
    Same edge order as :func:`~marble_widgets.engine.kernels.kernel_values`.
    """
    keep = geometry.edge_index[0] != geometry.edge_index[1]
    ei = geometry.edge_index[:, keep]
    p = edge_projections(geometry.pos, ei, geometry.frames if geometry.local_gauges else None)
    n, dim = geometry.n_nodes, p.shape[1]
    moments = np.stack([np.bincount(ei[0], weights=p[:, a] * p[:, b], minlength=n)
                        for a in range(dim) for b in range(dim)], axis=1).reshape(n, dim, dim)
    lam, vec = np.linalg.eigh(moments)
    ok = lam > RCOND * lam[:, -1:]
    inv_lam = np.divide(1.0, lam, out=np.zeros_like(lam), where=ok & (lam > 0))
    pinv = np.einsum("nab,nb,ncb->nac", vec, inv_lam, vec)
    w = np.einsum("eab,eb->ea", pinv[ei[0]], p)
    diag = np.stack([-np.bincount(ei[0], weights=w[:, c], minlength=n) for c in range(dim)], axis=1)
    return w, diag


def gradient_kernels(geometry: Geometry, rank: int = 1) -> list[sp.csr_matrix]:
    """Least-squares gradient kernels (:func:`gradient_values`), one per direction.

    Global gauge: N x N. Local gauges: block kernels whose off-diagonal block (i, j) is
    ``w^c_ij R_ij^{(x)rank}``, acting on tensors of ``rank`` frame indices per node (rank 1: the
    field's components; rank 2: the Jacobian's two indices, for order 2).
    """
    values = gradient_values(geometry)
    if not geometry.local_gauges:
        return directional_kernels(geometry.pos, geometry.edge_index, values=values)
    transport = geometry.connections
    for _ in range(rank - 1):
        e, d = len(transport), geometry.connections.shape[1]
        transport = np.einsum("eab,ecd->eacbd", transport, geometry.connections).reshape(
            e, transport.shape[1] * d, transport.shape[2] * d)
    return block_kernels(geometry.pos, geometry.edge_index, geometry.frames, transport, values=values)
