"""MARBLE's torch layers: learnable diffusion time, inner-product features and their invariant extension.

Each layer states its equation; all run on CPU and GPU alike and stay differentiable where the
network learns something (the time ``t`` and the inner-product matrices ``O_j``). The directional
derivatives are the geometry's sparse kernels (:class:`~marble_widgets.engine.features.DerivativeOperator`).
:class:`InvariantFeatures` ([ours]) replaces the inner products by exact rotation invariants.
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


#: (name, polynomial degree in the field, needs f, lowest order it needs) of each invariant, in output order
INVARIANTS: tuple[tuple[str, int, bool, int], ...] = (
    ("|f|^2", 2, True, 0),
    ("tr J", 1, False, 1), ("tr J^2", 2, False, 1), ("tr J^T J", 2, False, 1), ("tr J^3", 3, False, 1),
    ("f.Jf", 3, True, 1), ("f.J^2 f", 4, True, 1), ("|Jf|^2", 4, True, 1), ("|J^T f|^2", 4, True, 1),
    ("|H|^2", 2, False, 2), ("|lap f|^2", 2, False, 2), ("|grad div f|^2", 2, False, 2),
    ("f.lap f", 2, True, 2), ("f.grad div f", 2, True, 2), ("H:fff", 4, True, 2), ("|H:ff|^2", 6, True, 2),
    ("Jf.H:ff", 5, True, 2), ("H:(J f)", 3, True, 2),
)
#: the gradient of a signed root is evaluated at |phi| >= ROOT_FLOOR (finite where an invariant is 0)
ROOT_FLOOR = 1e-12


def invariant_names(order: int, include_self: bool = True) -> list[str]:
    """Names of :class:`InvariantFeatures`' outputs for derivative ``order`` (0-2), in output order."""
    if not 0 <= order <= 2:
        raise ValueError(f"inner_product_features='invariant' supports order 0, 1 or 2; got order={order}.")
    return [name for name, _, needs_f, q in INVARIANTS if q <= order and (include_self or not needs_f)]


def check_invariant_dims(n_signal: int, n_directions: int) -> None:
    """Raise a ValueError unless the signal is a vector with one component per derivative direction (s = d')."""
    if n_signal != n_directions:
        raise ValueError(
            f"inner_product_features='invariant' needs a vector field with as many components as derivative "
            f"directions (s = d'); got s = {n_signal}, d' = {n_directions}: use a vector field in the "
            "ambient space (v with x's columns), or inner_product_features=True/False."
        )


def polynomial_invariants(f: torch.Tensor | None, jac: torch.Tensor | None, hess: torch.Tensor | None) -> dict:
    """Every polynomial invariant of :data:`INVARIANTS` computable from what is given, by name.

    ``f (B, d)``, ``jac (B, d, d)`` with ``jac[:, a, c] = d_c f_a``, ``hess (B, d, d, d)`` with
    ``hess[:, a, c, e] = d_e d_c f_a``; any may be None. Unchanged when every index is rotated or
    reflected by the same orthogonal matrix (each is a full contraction of the tensors).
    """
    out = {}
    if f is not None:
        out["|f|^2"] = (f * f).sum(1)
    if jac is not None:
        j2 = jac @ jac
        out.update({"tr J": torch.einsum("baa->b", jac), "tr J^2": torch.einsum("baa->b", j2),
                    "tr J^T J": (jac * jac).sum((1, 2)), "tr J^3": torch.einsum("baa->b", j2 @ jac)})
    if f is not None and jac is not None:
        jf, jtf = torch.einsum("bac,bc->ba", jac, f), torch.einsum("bca,bc->ba", jac, f)
        out.update({"f.Jf": (f * jf).sum(1), "f.J^2 f": (jtf * jf).sum(1), "|Jf|^2": (jf * jf).sum(1),
                    "|J^T f|^2": (jtf * jtf).sum(1)})
    if hess is not None:
        lap, grad_div = torch.einsum("bacc->ba", hess), torch.einsum("baae->be", hess)
        out.update({"|H|^2": (hess * hess).sum((1, 2, 3)), "|lap f|^2": (lap * lap).sum(1),
                    "|grad div f|^2": (grad_div * grad_div).sum(1)})
        if f is not None:
            hff = torch.einsum("bace,bc,be->ba", hess, f, f)
            out.update({"f.lap f": (f * lap).sum(1), "f.grad div f": (f * grad_div).sum(1),
                        "H:fff": (f * hff).sum(1), "|H:ff|^2": (hff * hff).sum(1),
                        "Jf.H:ff": (torch.einsum("bac,bc->ba", jac, f) * hff).sum(1),
                        "H:(J f)": torch.einsum("bace,bac,be->b", hess, jac, f)})
    return out


class _SignedRoot(torch.autograd.Function):
    """``sign(phi) |phi|^(1/k)`` per column, with the gradient taken at ``|phi| >= ROOT_FLOOR``."""

    @staticmethod
    def forward(ctx, phi: torch.Tensor, degree: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(phi.abs(), degree)
        return torch.sign(phi) * phi.abs().pow(1.0 / degree)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        mag, degree = ctx.saved_tensors
        return grad * mag.clamp_min(ROOT_FLOOR).pow(1.0 / degree - 1.0) / degree, None


class InvariantFeatures(nn.Module):
    """[ours] Parameter-free invariants of each node's local flow (``inner_product_features="invariant"``).

    The linear features, computed with least-squares gradient kernels
    (:func:`~marble_widgets.engine.features.order_kernels`), are read back as the field ``f``
    (order 0), its Jacobian ``J[a, c] = d_c f_a`` (order 1) and second derivatives
    ``H[a, c, e] = d_e d_c f_a`` (order 2), which transform as tensors: ``f -> Qf``,
    ``J -> Q J Q^T``, ``H`` on all three indices, for any orthogonal Q of the ambient axes
    (global gauge) or of a node's tangent frame (local gauges). Their full contractions
    (:data:`INVARIANTS`: ``|f|^2``; ``tr J, tr J^2, tr J^T J, tr J^3, f.Jf, f.J^2 f, |Jf|^2, |J^T f|^2``;
    ``|H|^2``, the Laplacian and the gradient of the divergence, their products with f, ``H:fff``,
    ``|H:ff|^2``, ``Jf.H:ff``, ``H:(J f)``) are therefore exactly invariant under rotations and
    reflections, unlike the reference's inner products (§8, §14 item 13). Without ``include_self``
    the ones that need f are left out. Each is then mapped to ``sign(phi) |phi|^(1/k)``, k its
    degree in the field, so that every feature scales linearly with the field's amplitude (raw,
    degree-6 terms span many more decades than the linear ones and would swamp them in the MLP).

    Scale: the features are NOT scale-invariant. Multiplying the positions and vectors by s
    (as a different PCA variance does) scales ``f`` by s and leaves ``J`` unchanged (a
    least-squares derivative is a true derivative, not the reference's derivative times a
    neighbourhood length); ``H`` scales by 1/s. That is right when the networks' state spaces are
    in comparable units and their speeds are part of what is compared; the Jacobian invariants
    (eigenvalue rates per time step) are comparable across networks whatever their PCA scales, but
    ``|f|`` and its products are not: rescale each network's space first if its overall scale
    is arbitrary. Output: ``(B, len(invariant_names(order, include_self)))``; no parameters.
    """

    def __init__(self, n_signal: int, n_directions: int, order: int, include_self: bool = True) -> None:
        super().__init__()
        check_invariant_dims(n_signal, n_directions)
        self.dim, self.order, self.include_self = int(n_signal), int(order), bool(include_self)
        self.names = invariant_names(self.order, self.include_self)
        degrees = {name: k for name, k, _, _ in INVARIANTS}
        self.register_buffer("degree", torch.tensor([float(degrees[n]) for n in self.names]), persistent=False)

    def tensors(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """``f (B, d)``, ``J (B, d, d)``, ``H (B, d, d, d)`` read from linear features ``(B, E)`` (None if absent)."""
        d, b = self.dim, x.shape[0]
        f = x[:, :d] if self.include_self else None
        start = d if self.include_self else 0
        jac = x[:, start:start + d * d].reshape(b, d, d) if self.order >= 1 else None
        hess = x[:, start + d * d:start + d * d + d**3].reshape(b, d, d, d) if self.order >= 2 else None
        return f, jac, hess

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map linear features ``(B, E)`` to the invariants ``(B, n_invariants)``."""
        values = polynomial_invariants(*self.tensors(x))
        phi = torch.stack([values[name] for name in self.names], dim=1)
        return _SignedRoot.apply(phi, self.degree.to(phi.dtype))
