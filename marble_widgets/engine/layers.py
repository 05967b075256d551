"""MARBLE's torch layers: learnable diffusion time, inner-product features, directional derivatives.

Each layer states its equation; all are pure torch (no compiled PyG extras), so they run on CPU
and GPU alike and stay differentiable where the network learns something (the time ``t`` and the
inner-product matrices ``O_j``).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
#: smallest diffusion time; the reference clamps ``t`` here before every forward pass (docs/spec.md §6.3)
MIN_TIME = 1e-8


def heat_coefficients_torch(t: torch.Tensor, deg: int) -> torch.Tensor:
    """Chebyshev coefficients of the heat kernel, differentiable in ``t`` (shape ``(deg + 1,)``).

    With ``L~ = L_sym - I`` (spectrum in [-1, 1]) the heat kernel expands as
    ``exp(-t L_sym) = sum_k c_k(t) T_k(L~)`` with
    ``c_k(t) = (2 - [k = 0]) e^{-t} (-1)^k I_k(t)`` (``I_k``: modified Bessel function).
    The scaled values ``e^{-t} I_k(t)`` are ``i0e(t)`` times products of the ratios
    ``r_k = I_k / I_{k-1}``, obtained from the backward continued fraction
    ``r_k = t / (2k + t r_{k+1})`` (stable for every k and t, no overflow; the forward
    recurrence is unstable for ``k > t``). ``t`` is clamped to ``>= 1e-8`` like the reference
    (straight-through: the gradient survives), so ``c(t) -> (1, 0, 0, ...)``: the identity.
    """
    if deg < 0:
        raise ValueError(f"deg must be >= 0; got {deg}.")
    t = t.reshape(())
    t = t + (MIN_TIME - t).clamp_min(0.0).detach()  # value max(t, 1e-8), gradient kept
    # start the continued fraction far enough beyond deg for convergence at this t
    start = deg + 30 + int(2.0 * math.sqrt(float(t.detach())) + float(t.detach()))
    ratio = torch.zeros((), dtype=t.dtype, device=t.device)
    ratios = []
    for k in range(start, 0, -1):
        ratio = t / (2.0 * k + t * ratio)
        if k <= deg:
            ratios.append(ratio)
    scaled = [torch.special.i0e(t)]
    for r in reversed(ratios):  # r_1, r_2, ..., r_deg
        scaled.append(scaled[-1] * r)
    ive = torch.stack(scaled)
    k = torch.arange(deg + 1, device=t.device)
    sign = torch.where(k % 2 == 0, 1.0, -1.0).to(t.dtype)
    factor = torch.where(k == 0, 1.0, 2.0).to(t.dtype)
    return factor * sign * ive


class Diffusion(nn.Module):
    """Learnable scalar diffusion time ``t`` (init ``t0 = 0``) and its Chebyshev coefficients.

    Diffused signal: ``x(t) = D^{-1/2} exp(-t L_sym) D^{1/2} x = exp(-t L_rw) x``; the network
    only needs the coefficients ``c_k(t)`` of :func:`heat_coefficients_torch`, since every
    feature is linear in the signal and its Chebyshev basis is precomputed (docs/spec.md §6.3, §11).
    """

    def __init__(self, deg: int = 20, t0: float = 0.0) -> None:
        super().__init__()
        self.deg = int(deg)
        self.t = nn.Parameter(torch.tensor(float(t0)))

    @property
    def time(self) -> float:
        """Current clamped diffusion time as a float (for logs and callbacks)."""
        return max(float(self.t.detach()), MIN_TIME)

    def clamp_(self, t_max: float = float("inf")) -> None:
        """Clamp the stored time into ``[1e-8, t_max]`` in place, outside autograd (as the reference).

        Clamping the data (not inside the graph) keeps the gradient at the boundary, so ``t``
        can leave its initial value 0.
        """
        with torch.no_grad():
            self.t.clamp_(MIN_TIME, t_max)

    def coefficients(self) -> torch.Tensor:
        """Heat-kernel Chebyshev coefficients ``c_k(t)``, ``k = 0..deg`` (float32, differentiable)."""
        return heat_coefficients_torch(self.t.double(), self.deg).to(self.t.dtype)

    def forward(self, basis: torch.Tensor) -> torch.Tensor:
        """Combine a Chebyshev basis ``(N, deg+1, E)`` into diffused rows ``(N, E)``."""
        return torch.einsum("nke,k->ne", basis, self.coefficients().to(basis.dtype))


class InnerProductFeatures(nn.Module):
    """Per-node inner-product features ``h_k = tanh(<v_k, sum_j O_j v_j>)`` (docs/spec.md §8).

    The linear features of a node are cut into ``C`` consecutive vectors ``v_1..v_C`` of length
    ``s`` (the signal dimension); learnable ``O_j`` (s x s, no bias) start at the identity.
    For ``s = 1`` the features are ``|v_k|`` (no parameters), fixing the reference's crash.
    Output: ``(B, C)``.
    """

    def __init__(self, n_channels: int, n_signal: int) -> None:
        super().__init__()
        self.n_channels, self.n_signal = int(n_channels), int(n_signal)
        eye = torch.eye(self.n_signal).repeat(self.n_channels, 1, 1)
        self.O = nn.Parameter(eye) if self.n_signal > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map linear features ``(B, C * s)`` to ``(B, C)`` inner-product features."""
        v = x.reshape(x.shape[0], self.n_channels, self.n_signal)
        if self.O is None:
            return v.abs()[..., 0]
        mixed = torch.einsum("jab,njb->na", self.O, v)  # sum_j O_j v_j
        return torch.tanh(torch.einsum("nka,na->nk", v, mixed))


def _directional_derivative_class() -> type:
    """Define :class:`DirectionalDerivative` on first use.

    Why: importing torch_geometric costs seconds (it pulls in torch._dynamo); only the
    full-graph paths need the layer, so the default path never pays for it.
    """
    from torch_geometric.nn import MessagePassing

    class DirectionalDerivative(MessagePassing):
        """Directional derivatives on a graph: ``(K^c x)_i = sum_j F^c_ij (R_ij x_j - x_i)`` (docs/spec.md §7).

        ``F^c_ij`` are the normalised kernel weights of direction ``c`` on the edge (i, j) (no
        self-loops: they contribute 0) and ``R_ij`` the optional connection (local gauges), which
        acts on the leading component axis of the channels (the reference's order-2 convention).
        Output channels are interleaved per input channel: ``[d_1 x_1, ..., d_d' x_1, d_1 x_2, ...]``.
        Full-graph layer: used for inference, vec_norm and the diffusion paths that are not linear.
        """

        def __init__(self) -> None:
            super().__init__(aggr="add", flow="target_to_source")

        def forward(
            self,
            x: torch.Tensor,
            edge_index: torch.Tensor,
            weight: torch.Tensor,
            connection: torch.Tensor | None = None,
        ) -> torch.Tensor:
            """Apply the ``d'`` kernels to ``x (N, C)``; ``weight (E, d')``; returns ``(N, C * d')``."""
            out = self.propagate(edge_index, x=x, weight=weight, connection=connection)
            return out.reshape(x.shape[0], -1)

        def message(
            self, x_i: torch.Tensor, x_j: torch.Tensor, weight: torch.Tensor, connection: torch.Tensor | None
        ) -> torch.Tensor:
            if connection is not None:
                d = connection.shape[-1]
                xj = x_j.reshape(x_j.shape[0], d, -1)
                x_j = torch.einsum("eab,ebr->ear", connection, xj).reshape(x_j.shape)
            diff = x_j - x_i  # (E, C)
            return (diff[:, :, None] * weight[:, None, :]).reshape(diff.shape[0], -1)

    return DirectionalDerivative


def __getattr__(name: str):
    if name == "DirectionalDerivative":
        cls = _directional_derivative_class()
        cls.__module__ = __name__
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def kernel_edge_weights(
    kernels: list[sp.spmatrix],
    edge_index: np.ndarray,
    n_nodes: int,
    connections: np.ndarray | None = None,
) -> np.ndarray:
    """Kernel weights ``F^c_ij`` at every edge (i, j) of ``edge_index``, shape ``(E, d')``.

    Why: the message-passing layer needs per-edge weights. Scalar kernels ``K^c`` (N x N) hold
    ``F^c_ij`` off the diagonal; block kernels of local gauges (N d x N d) hold ``F^c_ij R_ij``
    in block (i, j), so ``F^c_ij = <R_ij, B_ij>_F / d`` with the orthogonal ``connections``
    ``R_ij`` (E, d, d) aligned with ``edge_index``.
    """
    rows, cols = np.asarray(edge_index[0]), np.asarray(edge_index[1])
    out = np.zeros((rows.size, len(kernels)))
    for c, K in enumerate(kernels):
        K = sp.csr_matrix(K)
        if K.shape == (n_nodes, n_nodes):
            out[:, c] = np.asarray(K[rows, cols]).ravel()
            continue
        d = K.shape[0] // n_nodes
        if d * n_nodes != K.shape[0] or connections is None:
            raise ValueError(
                f"kernel {c} has shape {K.shape}: block kernels need N*d rows (N={n_nodes}) "
                "and the connections R_ij."
            )
        a = np.arange(d)
        r_idx = np.broadcast_to(rows[:, None, None] * d + a[:, None], (rows.size, d, d))
        c_idx = np.broadcast_to(cols[:, None, None] * d + a[None, :], (rows.size, d, d))
        block = np.asarray(K[r_idx.ravel(), c_idx.ravel()]).reshape(-1, d, d)
        out[:, c] = (block * connections).sum(axis=(1, 2)) / d
    return out
