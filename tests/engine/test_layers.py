"""Layers: differentiable heat coefficients, diffusion, inner products."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.linalg import expm
from scipy.special import ive

from marble_widgets.engine.geometry import build_geometry
from marble_widgets.engine.laplacian import chebyshev_heat_basis, heat_coefficients
from marble_widgets.engine.layers import Diffusion, InnerProductFeatures, heat_coefficients_torch


def _coeffs(t: float, deg: int = 20, requires_grad: bool = False) -> torch.Tensor:
    tt = torch.tensor(t, dtype=torch.float64, requires_grad=requires_grad)
    return tt, heat_coefficients_torch(tt, deg)


@pytest.mark.parametrize("t", [1e-6, 0.3, 2.0, 9.0, 30.0])
def test_heat_coefficients_match_scipy_bessel(t):
    k = np.arange(21)
    expected = np.where(k == 0, 1.0, 2.0) * (-1.0) ** k * ive(k, t)
    np.testing.assert_allclose(_coeffs(t)[1].numpy(), expected, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("t", [0.01, 0.7, 5.0])
def test_heat_coefficients_gradient_matches_finite_differences(t):
    weights = torch.linspace(-1.0, 2.0, 21, dtype=torch.float64)
    tt, c = _coeffs(t, requires_grad=True)
    (grad,) = torch.autograd.grad((c * weights).sum(), tt)
    h = 1e-6
    fd = ((_coeffs(t + h)[1] - _coeffs(t - h)[1]) * weights).sum() / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)


def test_heat_coefficients_at_zero_are_the_identity_and_keep_a_gradient():
    tt, c = _coeffs(0.0, requires_grad=True)  # clamped to 1e-8
    np.testing.assert_allclose(c.detach().numpy(), np.eye(21)[0], atol=3e-8)
    (grad,) = torch.autograd.grad(c[0], tt)
    assert float(grad) == pytest.approx(-1.0, rel=1e-6)  # d/dt e^-t I0(t) at 0


@pytest.fixture(scope="module")
def small_geometry():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (60, 2))
    v = np.c_[np.sin(2 * x[:, 1]), x[:, 0] ** 2]
    return build_geometry(x, v, k=8)


def test_diffusion_matches_random_walk_expm(small_geometry):
    g = small_geometry
    n = g.n_nodes
    w = sp.csr_matrix((g.edge_weight, tuple(g.edge_index)), shape=(n, n)).toarray()
    lap_rw = np.eye(n) - w / w.sum(1, keepdims=True)
    basis = chebyshev_heat_basis(g.laplacian, 16, g.signal, g.degree).transpose(1, 0, 2)
    layer = Diffusion(deg=16, t0=0.7)
    out = layer(torch.as_tensor(basis)).detach().numpy()
    np.testing.assert_allclose(out, expm(-0.7 * lap_rw) @ g.signal, atol=1e-7)
    layer.clamp_()
    assert layer.time == pytest.approx(0.7)
    zero = Diffusion(deg=16)  # t0 = 0 -> identity
    np.testing.assert_allclose(zero(torch.as_tensor(basis)).detach().numpy(), g.signal, atol=1e-7)


def test_inner_products_hand_computed_and_scalar_signal():
    x = torch.tensor([[1.0, 2.0, 0.5, -1.0, 0.0, 3.0]])  # C = 3 channels of s = 2
    layer = InnerProductFeatures(n_channels=3, n_signal=2)
    total = np.array([1.5, 4.0])  # sum_j v_j with O_j = I
    expected = np.tanh([np.dot([1, 2], total), np.dot([0.5, -1], total), np.dot([0, 3], total)])
    np.testing.assert_allclose(layer(x).detach().numpy()[0], expected, rtol=1e-6)
    layer(x).sum().backward()
    assert layer.O.grad is not None and torch.isfinite(layer.O.grad).all()
    scalar = InnerProductFeatures(n_channels=3, n_signal=1)
    np.testing.assert_allclose(scalar(torch.tensor([[-2.0, 0.5, 3.0]])).numpy(), [[2.0, 0.5, 3.0]])
