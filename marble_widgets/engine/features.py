"""MARBLE's linear feature stack: iterated directional derivatives (docs/spec.md §7.3-7.4).

Layout (order-major, interleaved): ``[F0, F1, ..., Fp]`` with ``F0`` the signal (if
``include_self``), ``F1 = [d1 f1, ..., dd' f1, d1 f2, ...]`` and ``F_q`` taking each channel of
``F_{q-1}`` in turn and appending its d' derivatives. With local gauges the signal is first
expressed in the frames (``u_i = T_i^T v_i``) and the covariant block kernels act on the
component index (the derivative-direction index is not transported, §14 item 17, as the
reference).

:func:`diffusion_feature_basis` returns the features of each Chebyshev piece of the heat
diffusion, so that ``features(t) = einsum('nke,k->ne', basis, heat_coefficients(t, deg))``:
a minibatch's features at any diffusion time are a weighted sum of precomputed rows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from marble_widgets.engine.laplacian import chebyshev_heat_basis

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
    names = list(signal_names)
    if len(names) != n_signal:
        raise ValueError(f"signal_names has {len(names)} entries, expected n_signal={n_signal}.")
    out = list(names) if include_self else []
    prev = names
    for _ in range(order):
        prev = [f"d{c + 1} {p}" for p in prev for c in range(n_directions)]
        out.extend(prev)
    return out


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


def _signal_in_gauge(geometry: Geometry, signal: np.ndarray | None) -> np.ndarray:
    """The signal as (N, s), projected into the local frames when the gauges are local."""
    sig = geometry.signal if signal is None else np.asarray(signal, dtype=float)
    if sig.ndim == 1:
        sig = sig[:, None]
    if sig.shape[0] != len(geometry.pos):
        raise ValueError(
            f"signal has {sig.shape[0]} rows but the geometry has {len(geometry.pos)} nodes."
        )
    if not geometry.local_gauges:
        return sig
    if sig.shape[1] != geometry.frames.shape[1]:
        raise ValueError(
            f"local gauges need a signal in the ambient space (s = n = {geometry.frames.shape[1]}),"
            f" got s = {sig.shape[1]}; use local_gauges=False for this signal."
        )
    return np.einsum("nk,nkd->nd", sig, geometry.frames)


def _derivative_stack(kernels: list, f0: np.ndarray, order: int) -> list[np.ndarray]:
    """Iterate the kernels on ``f0`` of shape (N, b, M, s_m); returns per order (N, M, C_q).

    ``b`` is the block (vector component transported by block kernels, 1 for scalar
    kernels), ``M`` independent pieces (Chebyshev terms), ``s_m`` scalar channels.
    """
    n, b, pieces, s_m = f0.shape
    out = [np.ascontiguousarray(f0.transpose(0, 2, 1, 3)).reshape(n, pieces, b * s_m)]
    cur = f0.reshape(n * b, pieces * s_m)  # columns: piece-major
    width = s_m
    for _ in range(order):
        stacked = np.stack([kern @ cur for kern in kernels], axis=-1)  # (N b, M*width, d')
        width *= len(kernels)
        cur = stacked.reshape(n * b, pieces * width)
        layer = cur.reshape(n, b, pieces, width).transpose(0, 2, 1, 3)
        out.append(np.ascontiguousarray(layer).reshape(n, pieces, b * width))
    return out


def _features_of_pieces(
    geometry: Geometry, pieces: np.ndarray, order: int, include_self: bool
) -> np.ndarray:
    """Derivative features of signal pieces (M, N, s) in the gauge; returns (N, M, E)."""
    m, n, s = pieces.shape
    if geometry.local_gauges:
        f0 = pieces.transpose(1, 2, 0)[..., None]  # (N, d, M, 1)
    else:
        f0 = pieces.transpose(1, 0, 2)[:, None]  # (N, 1, M, s)
    stack = _derivative_stack(geometry.kernels, f0, order)
    if not include_self:
        stack = stack[1:]
    if not stack:
        return np.zeros((n, m, 0))
    return np.concatenate(stack, axis=-1)


def derivative_features(
    geometry: Geometry,
    signal: np.ndarray | None = None,
    order: int = 2,
    include_self: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Derivative features ``[F0, F1, ..., Fp]`` of a signal on the geometry, shape (N, E).

    Why: with diffusion and inner products off, MARBLE's MLP input has no parameters and is
    computed once (§11 [ours]). ``signal=None`` uses ``geometry.signal``; with local gauges the
    signal is projected into the frames first.
    """
    sig = _signal_in_gauge(geometry, signal)
    n_feat = feature_count(sig.shape[1], geometry.n_directions, order, include_self)
    check_feature_size(len(sig), n_feat, 1, max_bytes)
    return _features_of_pieces(geometry, sig[None], order, include_self)[:, 0]


def diffusion_feature_basis(
    geometry: Geometry,
    signal: np.ndarray | None = None,
    order: int = 2,
    include_self: bool = True,
    deg: int = 30,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Features of each Chebyshev piece of the heat-diffused signal, shape (N, deg + 1, E).

    Why: ``features(t) = einsum('nke,k->ne', basis, heat_coefficients(t, deg))`` equals
    :func:`derivative_features` of ``exp(-t L_rw) signal`` (scalar heat kernel per channel in
    the global gauge; linear connection-heat diffusion of the frame coordinates with local
    gauges), so training can learn t on minibatch rows without touching the graph.
    """
    sig = _signal_in_gauge(geometry, signal)
    n_feat = feature_count(sig.shape[1], geometry.n_directions, order, include_self)
    check_feature_size(len(sig), n_feat, deg + 1, max_bytes)
    n, s = sig.shape
    if geometry.local_gauges:
        flat = sig.reshape(n * s)
        pieces = chebyshev_heat_basis(geometry.laplacian, deg, flat, geometry.degree)
        pieces = pieces.reshape(deg + 1, n, s)
    else:
        pieces = chebyshev_heat_basis(geometry.laplacian, deg, sig, geometry.degree)
    return _features_of_pieces(geometry, pieces, order, include_self)
