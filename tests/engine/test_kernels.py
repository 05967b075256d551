"""Tests of the directional-derivative kernels (docs/spec.md §7.1-7.2, §15.1.1-3, §15.1.9)."""
from __future__ import annotations

import numpy as np
import pytest

from marble_widgets.engine.gauges import connections
from marble_widgets.engine.graph import cknn_edges
from marble_widgets.engine.kernels import block_kernels, directional_kernels


def lattice(h=0.1):
    """Square lattice of spacing h on [0, 2]^2 and the mask of nodes >= 2 spacings inside."""
    g = np.arange(0, 2 + h / 2, h)
    x = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    interior = np.all((x >= 2 * h - 1e-9) & (x <= 2 - 2 * h + 1e-9), axis=1)
    return x, interior


def rot2(theta):
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def test_kernels_annihilate_constants(rng):
    x = rng.normal(size=(300, 3))
    e = cknn_edges(x, 7, 1.3)
    for kern in directional_kernels(x, e):
        assert np.abs(kern @ np.ones(300)).max() < 1e-12
        assert kern.shape == (300, 300)


def test_lattice_linear_field_exact():
    x, inner = lattice()
    e = cknn_edges(x, 8, 1.1)
    assert np.all(np.bincount(e[0])[inner] == 8)  # 8-neighbour interior
    a = np.array([0.3, -0.7])
    g = x @ a
    feats = np.stack([k @ g for k in directional_kernels(x, e)], 1)
    np.testing.assert_allclose(feats[inner], np.broadcast_to([0.03, -0.07], (inner.sum(), 2)), atol=1e-12)


def test_frame_dependence_45_degrees(rng):
    x2, inner = lattice()
    e = cknn_edges(x2, 8, 1.1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    x3 = x2 @ q[:, :2].T  # lattice in a randomly rotated plane of R^3
    a = np.array([0.3, -0.7])
    g = x2 @ a
    planar = np.stack([k @ g for k in directional_kernels(x2, e)], 1)
    for theta, expect in [(0.0, None), (np.pi / 4, [-0.03, -0.075])]:
        frames = np.broadcast_to(q[:, :2] @ rot2(theta), (len(x3), 3, 2))
        feats = np.stack([k @ g for k in directional_kernels(x3, e, frames)], 1)
        if expect is None:
            np.testing.assert_allclose(feats, planar, atol=1e-12)
        else:
            np.testing.assert_allclose(feats[inner], np.broadcast_to(expect, (inner.sum(), 2)), atol=1e-12)


def test_translation_and_scale_invariance(rng):
    x = rng.normal(size=(200, 3))
    e = cknn_edges(x, 6, 1.2)
    base = directional_kernels(x, e)
    for moved in (x + np.array([5.0, -3.0, 100.0]), 7.5 * x):
        for k0, k1 in zip(base, directional_kernels(moved, e)):
            assert abs(k0 - k1).max() < 1e-12


def test_constant_coordinate_gives_zero_not_nan(rng):
    x = np.column_stack([rng.uniform(size=(200, 2)), np.ones(200)])  # z constant
    e = cknn_edges(x, 6, 1.2)
    with pytest.warns(UserWarning, match="set to 0"):
        kern = directional_kernels(x, e)
    assert kern[2].nnz == 0 or abs(kern[2]).max() == 0
    assert all(np.all(np.isfinite(k.data)) for k in kern)


def _plane_with_frames(rng, n=250):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    x = rng.uniform(size=(n, 2)) @ q[:, :2].T
    ang = rng.uniform(0, 2 * np.pi, n)
    rots = np.stack([rot2(t) for t in ang])
    return x, q[None, :, :2] @ rots, q


def test_block_kernels_parallel_field_and_formula(rng):
    x, frames, q = _plane_with_frames(rng)
    n = len(x)
    e = cknn_edges(x, 8, 1.2)
    conn = connections(frames, e)
    blocks = block_kernels(x, e, frames, conn)
    assert len(blocks) == 2 and blocks[0].shape == (2 * n, 2 * n)
    field = q[:, :2] @ np.array([1.3, -0.2])
    u = np.einsum("k,nkd->nd", field, frames)
    for b in blocks:
        assert np.abs(b @ u.ravel()).max() < 1e-12  # parallel field: zero covariant derivative
    # (K^c u)_i = sum_j F_ij (R_ij u_j - u_i) with F from the scalar kernel
    w = rng.normal(size=(n, 2))
    scalar = directional_kernels(x, e, frames)
    i, j = e
    for c in range(2):
        f = np.asarray(scalar[c][i, j]).ravel()
        moved = np.einsum("eab,eb->ea", conn, w[j]) - w[i]
        expect = np.zeros((n, 2))
        np.add.at(expect, i, f[:, None] * moved)
        np.testing.assert_allclose((blocks[c] @ w.ravel()).reshape(n, 2), expect, atol=1e-12)
