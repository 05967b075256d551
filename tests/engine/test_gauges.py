"""Tests of local PCA frames, manifold dimension and connections (docs/spec.md §5, §15.1.4-6)."""
from __future__ import annotations

import numpy as np
import pytest

from marble_widgets.engine.gauges import (
    connections,
    global_frames,
    local_frames,
    manifold_dimension,
    procrustes,
)
from marble_widgets.engine.graph import cknn_edges


def _sphere(rng, n):
    x = rng.normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _excess(a, b, c):
    """Spherical excess (area) of the geodesic triangle abc on the unit sphere."""
    return 2 * np.arctan(abs(a @ np.cross(b, c)) / (1 + a @ b + b @ c + c @ a))


def _holonomy_angle(ta, tb, tc):
    """Rotation angle of R_ab R_bc R_ca (frames -> Procrustes connections)."""
    r = procrustes(np.stack([ta.T @ tb, tb.T @ tc, tc.T @ ta]))
    h = r[0] @ r[1] @ r[2]
    assert np.linalg.det(h) == pytest.approx(1.0, abs=1e-12)
    return np.arctan2(h[1, 0], h[0, 0])


def _triangle(side):
    """Equilateral triangle of points at polar angle ``side`` around the north pole."""
    t = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
    return np.stack([np.sin(side) * np.cos(t), np.sin(side) * np.sin(t), np.full(3, np.cos(side))], 1)


def test_sphere_dimension_and_normals(rng):
    x = _sphere(rng, 2000)
    frames, d, curve = local_frames(x, np.zeros(2000, int), n_neighbours=30, var_explained=0.9)
    assert d == 2 and frames.shape == (2000, 3, 2)
    np.testing.assert_allclose(curve, [0.55, 0.997, 1.0], atol=0.01)  # docs/spec.md §15.1.4 numbers
    np.testing.assert_allclose(np.einsum("nka,nkb->nab", frames, frames), np.broadcast_to(np.eye(2), (2000, 2, 2)), atol=1e-12)
    normal = np.cross(frames[:, :, 0], frames[:, :, 1])
    angle = np.degrees(np.arccos(np.clip(np.abs((normal * x).sum(1)), 0, 1)))
    assert angle.max() < 5.0


def test_circle_is_one_dimensional(rng):
    phi = rng.uniform(0, 2 * np.pi, 500)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    x = np.stack([np.cos(phi), np.sin(phi), 0 * phi], 1) @ q.T
    frames, d, _ = local_frames(x, np.zeros(500, int), 30)
    assert d == 1
    tangent = np.stack([-np.sin(phi), np.cos(phi), 0 * phi], 1) @ q.T
    assert np.abs(np.abs((frames[:, :, 0] * tangent).sum(1)) - 1).max() < 1e-3


def test_flat_plane_rank_deficient_is_fine(rng):
    uv = rng.uniform(size=(300, 2))
    x = np.column_stack([uv, np.zeros(300)])  # exactly flat: zero third singular value
    frames, d, curve = local_frames(x, np.zeros(300, int), 30)
    assert d == 2 and curve[-1] == 1.0
    assert np.abs(frames[:, 2, :]).max() < 1e-12  # frames span the plane
    assert manifold_dimension(np.array([[3.0, 2.0, 0.0]]), 1.0) == 2


def test_manifold_dim_override_and_errors(rng):
    x = _sphere(rng, 300)
    frames, d, _ = local_frames(x, np.zeros(300, int), 30, manifold_dim=3)
    assert d == 3 and frames.shape[2] == 3
    with pytest.raises(ValueError, match="manifold_dim must be between 1 and 3"):
        local_frames(x, np.zeros(300, int), 30, manifold_dim=4)
    with pytest.raises(ValueError, match="var_explained"):
        manifold_dimension(np.ones((3, 3)), 1.5)


def test_flat_holonomy_every_triangle(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    n = 200
    x = rng.uniform(size=(n, 2)) @ q[:, :2].T
    ang = rng.uniform(0, 2 * np.pi, n)
    flip = rng.choice([1.0, -1.0], n)  # reflections allowed too
    rot = np.zeros((n, 2, 2))
    rot[:, 0, 0], rot[:, 1, 0] = np.cos(ang), np.sin(ang)
    rot[:, 0, 1], rot[:, 1, 1] = -np.sin(ang) * flip, np.cos(ang) * flip
    frames = q[None, :, :2] @ rot
    e = cknn_edges(x, 8, 1.2)
    conn = connections(frames, e)
    lookup = {(int(i), int(j)): r for i, j, r in zip(e[0], e[1], conn)}
    nbrs = {i: set(e[1][e[0] == i].tolist()) for i in range(n)}
    worst, count = 0.0, 0
    for i in range(n):
        for j in nbrs[i]:
            for k in nbrs[i] & nbrs[j]:
                h = lookup[i, j] @ lookup[j, k] @ lookup[k, i]
                worst = max(worst, np.abs(h - np.eye(2)).max())
                count += 1
    assert count > 500 and worst < 1e-12


def test_connection_properties(rng):
    x = _sphere(rng, 400)
    frames, d, _ = local_frames(x, np.zeros(400, int), 30)
    e = cknn_edges(x, 10, 1.0)
    e = np.concatenate([e, np.stack([np.arange(5), np.arange(5)])], axis=1)  # a few self-loops
    conn = connections(frames, e)
    np.testing.assert_allclose(np.einsum("eab,eac->ebc", conn, conn), np.broadcast_to(np.eye(2), conn.shape), atol=1e-12)
    lookup = {(int(i), int(j)): r for i, j, r in zip(e[0], e[1], conn)}
    for i, j in list(lookup)[:200]:
        np.testing.assert_allclose(lookup[j, i], lookup[i, j].T, atol=1e-15)
    np.testing.assert_array_equal(conn[-5:], np.broadcast_to(np.eye(2), (5, 2, 2)))


@pytest.mark.parametrize("side", [0.05, 0.1, 0.2])
def test_curved_holonomy_exact_frames(rng, side):
    pts = _triangle(side)
    frames = []
    for p in pts:
        t1 = np.cross(p, rng.normal(size=3))
        t1 /= np.linalg.norm(t1)
        frames.append(np.stack([t1, np.cross(p, t1)], 1))  # exact tangent frame, random gauge
    angle = _holonomy_angle(*frames)
    assert abs(angle) == pytest.approx(_excess(*pts), abs=1e-13)


def test_curved_holonomy_pca_frames(rng):
    x = _sphere(rng, 2000)
    frames, d, _ = local_frames(x, np.zeros(2000, int), 30)
    idx = [int(np.argmax(x @ p)) for p in _triangle(0.4)]
    angle = _holonomy_angle(*frames[idx])
    assert abs(angle) == pytest.approx(_excess(*x[idx]), rel=0.10)


def test_global_frames():
    f = global_frames(4, 3)
    assert f.shape == (4, 3, 3) and np.array_equal(f[2], np.eye(3))
