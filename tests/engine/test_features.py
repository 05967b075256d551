"""Tests of the derivative feature stack and diffused features (docs/spec.md §7.3-7.4, §15.1)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from marble_widgets.engine.features import (
    check_feature_size,
    derivative_features,
    feature_coords,
    feature_count,
    feature_names,
)
from marble_widgets.engine.geometry import build_geometry
from marble_widgets.engine.layers import Diffusion
from marble_widgets.engine.network import DiffusedFeatures, build_feature_source


def lattice(h=0.1):
    g = np.arange(0, 2 + h / 2, h)
    x = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    interior = np.all((x >= 2 * h - 1e-9) & (x <= 2 - 2 * h + 1e-9), axis=1)
    return x, interior


def test_names_and_counts():
    names = feature_names(2, 2, 2)
    assert names[:6] == ["v1", "v2", "d1 v1", "d2 v1", "d1 v2", "d2 v2"]
    assert names[6:10] == ["d1 d1 v1", "d2 d1 v1", "d1 d2 v1", "d2 d2 v1"]
    assert len(names) == feature_count(2, 2, 2) == 14
    assert feature_count(5, 5, 2) == 155 and feature_count(10, 10, 1) == 110  # docs/spec.md §7.4
    assert feature_count(1, 1, 3) == 4 and feature_count(1, 2, 1, include_self=False) == 2
    assert feature_names(1, 1, 1, include_self=False) == ["d1 v1"]
    with pytest.raises(ValueError, match="signal_names has 1"):
        feature_names(2, 2, 1, signal_names=["a"])


def test_feature_coords_follow_the_layout():
    c = feature_coords(2, 2, 2)
    np.testing.assert_array_equal(c["order"], [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(c["component"], [0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1])
    assert list(c["direction"][:10]) == ["", "", "d1", "d2", "d1", "d2", "d1 d1", "d2 d1", "d1 d2", "d2 d2"]
    names = feature_names(2, 2, 2)  # the name is "<direction> v<component + 1>"
    assert names == [f"{d} v{a + 1}".strip() for d, a in zip(c["direction"], c["component"])]
    c1 = feature_coords(3, 1, 1, include_self=False)
    assert list(c1["order"]) == [1, 1, 1] and list(c1["component"]) == [0, 1, 2]


def test_lattice_linear_scalar_field():
    x, inner = lattice()
    a = np.array([0.3, -0.7])
    geo = build_geometry(x, x @ a, k=8, delta=1.1)
    f = derivative_features(geo, order=2)
    assert f.shape == (len(x), 1 + 2 + 4)
    np.testing.assert_allclose(f[:, 0], x @ a)
    np.testing.assert_allclose(f[inner, 1:3], np.broadcast_to([0.03, -0.07], (inner.sum(), 2)), atol=1e-12)
    assert np.abs(f[inner, 3:]).max() < 1e-12


def test_rotation_field_interior():
    x, inner = lattice()
    h = 0.1
    v = np.column_stack([-x[:, 1], x[:, 0]])
    geo = build_geometry(x, v, k=8, delta=1.1)
    f = derivative_features(geo, order=2)
    assert f.shape == (len(x), 2 + 4 + 8)
    np.testing.assert_allclose(f[inner, 2:6], np.broadcast_to([0, -h, h, 0], (inner.sum(), 4)), atol=1e-12)
    assert np.abs(f[inner, 6:]).max() < 1e-12
    g1 = derivative_features(geo, order=1, include_self=False)
    np.testing.assert_array_equal(g1, f[:, 2:6])


def test_constant_field_on_plane_is_zero(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    x = rng.uniform(size=(400, 2)) @ q[:, :2].T
    v = np.broadcast_to(q[:, :2] @ np.array([0.5, 1.0]), (400, 3))
    for local in (False, True):
        geo = build_geometry(x, v, k=10, local_gauges=local)
        assert geo.n_directions == (2 if local else 3)
        f = derivative_features(geo, order=2, include_self=False)
        assert np.abs(f).max() < 1e-12


def test_one_direction_and_scalar_signal(rng):
    x = np.sort(rng.uniform(size=(100, 1)), axis=0)  # d' = 1
    geo = build_geometry(x, 2.0 * x[:, 0], k=5)
    f = derivative_features(geo, order=3)
    assert f.shape == (100, 4) and np.all(np.isfinite(f))
    assert np.abs(geo.kernels[0] @ np.ones(100)).max() < 1e-12


def test_local_gauge_signal_must_be_ambient(rng):
    x = rng.normal(size=(200, 3))
    geo = build_geometry(x, x, k=10, local_gauges=True)
    with pytest.raises(ValueError, match="s = n = 3"):
        derivative_features(geo, signal=np.ones((200, 2)))


def _rw_expm(geo, t):
    n = geo.n_nodes
    w = np.zeros((n, n))
    w[geo.edge_index[0], geo.edge_index[1]] = geo.edge_weight
    return scipy.linalg.expm(-t * (np.eye(n) - w / w.sum(1, keepdims=True)))


@pytest.mark.parametrize("t", [0.0, 0.7, 4.0])
def test_diffused_features_global_are_the_features_of_the_heat_diffused_signal(rng, t):
    x = rng.uniform(size=(150, 2))
    v = rng.normal(size=(150, 2))
    geo = build_geometry(x, v, k=8)
    source = build_feature_source(geo, order=2, diffusion=True, deg=30)
    assert isinstance(source, DiffusedFeatures)
    got = source.full(Diffusion(deg=30, t0=t)).detach().numpy()
    expect = derivative_features(geo, signal=_rw_expm(geo, t) @ v, order=2)
    assert got.shape == (150, 14)
    np.testing.assert_allclose(got, expect, atol=2e-5 * np.abs(expect).max())


def test_diffused_features_local_use_the_vector_heat_method(rng):
    x = rng.normal(size=(200, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    v = np.cross(x, [0.0, 0.0, 1.0])
    geo = build_geometry(x, v, k=10, local_gauges=True)
    d = geo.n_directions
    t = 1.5
    source = build_feature_source(geo, order=1, diffusion=True, deg=30)
    got = source.full(Diffusion(deg=30, t0=t)).detach().numpy()
    # reference: dense connection heat on the frame coordinates, scalar heat on their norms
    lap = geo.laplacian.toarray()
    s = np.repeat(np.sqrt(geo.degree), d)
    heat = (1 / s)[:, None] * scipy.linalg.expm(-t * lap) * s[None, :]
    u = np.einsum("nk,nkd->nd", v, geo.frames)
    ut = (heat @ u.ravel()).reshape(-1, d)
    a = _rw_expm(geo, t) @ np.linalg.norm(u, axis=1)
    ut = ut / np.linalg.norm(ut, axis=1, keepdims=True) * a[:, None]
    expect = derivative_features(geo, signal=np.einsum("nkd,nd->nk", geo.frames, ut), order=1)
    np.testing.assert_allclose(got, expect, atol=2e-5 * np.abs(expect).max())


def test_derivative_gradient_is_the_transposed_operator(rng):
    x = rng.uniform(size=(80, 2))
    geo = build_geometry(x, rng.normal(size=(80, 2)), k=6)
    source = build_feature_source(geo, order=1, include_self=False, diffusion=True)
    u = torch.tensor(rng.normal(size=(80, 2)), dtype=torch.float32, requires_grad=True)
    w = torch.as_tensor(rng.normal(size=(80, 4)), dtype=torch.float32)
    (source.operator(u) * w).sum().backward()
    k = [m.toarray() for m in geo.kernels]  # output column 2a + c is K^c u_a
    expect = np.stack([sum(k[c].T @ w.numpy()[:, 2 * a + c] for c in range(2)) for a in range(2)], axis=1)
    np.testing.assert_allclose(u.grad.numpy(), expect, rtol=1e-5, atol=1e-5)


def test_size_guard():
    with pytest.raises(ValueError, match="PCA first"):
        check_feature_size(100_000, feature_count(900, 900, 2), 1)
    check_feature_size(1000, 155, 31)  # small: fine
