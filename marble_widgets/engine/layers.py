"""MARBLE's torch layers: learnable diffusion time and inner-product features.

Each layer states its equation; both run on CPU and GPU alike and stay differentiable where the
network learns something (the time ``t`` and the inner-product matrices ``O_j``). The directional
derivatives are the geometry's sparse kernels (:class:`~marble_widgets.engine.features.DerivativeOperator`).
"""
from __future__ import annotations

import torch
from torch import nn

from marble_widgets.engine.laplacian import heat_coefficients, heat_coefficients_grad

#: smallest diffusion time; the reference clamps ``t`` here before every forward pass (docs/spec.md §6.3)
MIN_TIME = 1e-8


class _HeatCoefficients(torch.autograd.Function):
    """``c_k(t)`` of :func:`~marble_widgets.engine.laplacian.heat_coefficients` as a torch op,
    with the analytic derivative :func:`~marble_widgets.engine.laplacian.heat_coefficients_grad`."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, deg: int) -> torch.Tensor:
        value = float(t.detach())
        ctx.save_for_backward(torch.as_tensor(heat_coefficients_grad(value, deg), dtype=t.dtype, device=t.device))
        return torch.as_tensor(heat_coefficients(value, deg), dtype=t.dtype, device=t.device)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (dc_dt,) = ctx.saved_tensors
        return (grad * dc_dt).sum(), None


def heat_coefficients_torch(t: torch.Tensor, deg: int) -> torch.Tensor:
    """Chebyshev coefficients of the heat kernel, differentiable in ``t`` (shape ``(deg + 1,)``).

    The one implementation is :func:`~marble_widgets.engine.laplacian.heat_coefficients`
    (``c_k(t) = (2 - [k = 0]) (-1)^k e^{-t} I_k(t)``, scaled Bessel functions); this wraps it
    for autograd. ``t`` is clamped to ``>= 1e-8`` like the reference (straight-through: the
    gradient survives), so ``c(t) -> (1, 0, 0, ...)``: the identity.
    """
    if deg < 0:
        raise ValueError(f"deg must be >= 0; got {deg}.")
    t = t.reshape(())
    t = t + (MIN_TIME - t).clamp_min(0.0).detach()  # value max(t, 1e-8), gradient kept
    return _HeatCoefficients.apply(t, int(deg))


class Diffusion(nn.Module):
    """Learnable scalar diffusion time ``t`` (init ``t0 = 0``) and its Chebyshev coefficients.

    Diffused signal: ``x(t) = D^{-1/2} exp(-t L_sym) D^{1/2} x = exp(-t L_rw) x``; the network
    only needs the coefficients ``c_k(t)`` of :func:`heat_coefficients_torch`, since every
    diffusion is linear in the signal, whose Chebyshev basis is precomputed (docs/spec.md §6.3, §11).
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
