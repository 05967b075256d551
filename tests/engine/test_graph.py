"""Tests of furthest-point sampling and the CkNN graph (docs/spec.md §3, §4, §15.1)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from marble_widgets.engine.graph import (
    cknn_edges,
    cknn_graph,
    count_components,
    diameter,
    furthest_point_sampling,
)


def brute_force_cknn(x: np.ndarray, k: int, delta: float) -> set[tuple[int, int]]:
    """Dense reference CkNN (test only): all ordered pairs passing the strict rule."""
    dist = cdist(x, x)
    rho = np.sort(dist, axis=1)[:, k]
    ok = dist < delta * np.sqrt(np.outer(rho, rho))
    np.fill_diagonal(ok, False)
    return set(zip(*np.nonzero(ok)))


@pytest.mark.parametrize("k,delta,dim", [(5, 1.0, 2), (10, 1.5, 3), (3, 0.8, 5)])
def test_cknn_matches_brute_force(rng, k, delta, dim):
    x = rng.normal(size=(300, dim)) * rng.uniform(0.2, 2, size=dim)
    edges = cknn_edges(x, k, delta)
    assert set(zip(*edges)) == brute_force_cknn(x, k, delta)
    assert edges.dtype == np.int64


def test_cknn_symmetric_no_self_loops(rng):
    x = rng.uniform(size=(400, 2))
    e = cknn_edges(x, 8, 1.2)
    assert not np.any(e[0] == e[1])
    assert set(zip(*e)) == set(zip(e[1], e[0]))


def test_no_edges_across_conditions(rng):
    x = rng.normal(size=(200, 2))
    cond = np.repeat([0, 1], 100)
    x[cond == 1] *= 1.01  # overlapping clouds
    e = cknn_graph(x, cond, k=6, delta=1.5)
    assert np.all(cond[e[0]] == cond[e[1]])
    # each condition's graph equals the graph of that cloud alone
    sub = cknn_edges(x[100:], 6, 1.5) + 100
    got = e[:, cond[e[0]] == 1]
    assert set(zip(*got)) == set(zip(*sub))


def test_k_too_large_names_condition(rng):
    x = rng.normal(size=(30, 2))
    cond = np.array([0] * 25 + [1] * 5)
    with pytest.raises(ValueError, match=r"condition 'b' has 5 distinct point.*k=6"):
        cknn_graph(x, cond, k=6, labels=["a", "b"])


def test_duplicates_no_zero_rho_and_finite(rng):
    base = rng.normal(size=(100, 2))
    x = np.concatenate([base, base[:40], base[:10]])  # 50 duplicates
    e = cknn_edges(x, 5, 1.0)
    d = np.linalg.norm(x[e[0]] - x[e[1]], axis=1)
    assert np.all(d > 0)  # never an edge between coincident points
    assert np.all(np.isfinite(1.0 / d))
    # every copy has the same neighbour positions as its original
    nb = {i: {tuple(x[j]) for j in e[1][e[0] == i]} for i in range(len(x))}
    assert nb[100] == nb[0] and nb[140] == nb[0]
    # and the distinct-point graph is unchanged for the originals
    e0 = cknn_edges(base, 5, 1.0)
    got = e[:, (e[0] < 100) & (e[1] < 100)]
    assert set(zip(*got)) == set(zip(*e0))


def test_component_count_and_warning(rng):
    a = rng.normal(size=(60, 2))
    phi = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    circle = np.stack([np.cos(phi), np.sin(phi)], 1)  # evenly spaced: one component
    x = np.concatenate([a, a + 100.0, circle])
    cond = np.array([0] * 120 + [1] * 60)
    with pytest.warns(UserWarning, match="condition 0.*2 connected components"):
        e = cknn_graph(x, cond, k=5)
    np.testing.assert_array_equal(count_components(e, cond), [2, 1])


def test_diameter_exact(rng):
    for shape in [(500, 3), (1000, 2)]:
        x = rng.normal(size=shape)
        assert diameter(x, chunk=64) == pytest.approx(pdist(x).max(), rel=1e-12)
    s = rng.normal(size=(800, 3))
    s /= np.linalg.norm(s, axis=1, keepdims=True)  # no pruning possible on a sphere
    assert diameter(s, chunk=100) == pytest.approx(pdist(s).max(), rel=1e-12)


def test_fps_covering_radius_and_separation(rng):
    x = rng.uniform(size=(2000, 2))
    spacing = 0.05
    kept = furthest_point_sampling(x, spacing, seed=None)
    diam = pdist(x).max()
    assert np.all(np.diff(kept) > 0)
    cover = cdist(x, x[kept]).min(1).max()
    assert cover / diam < spacing  # every point within the covering radius
    sep = pdist(x[kept]).min()
    assert sep / diam >= spacing  # kept points are at least spacing apart
    assert furthest_point_sampling(x, 0.0).tolist() == list(range(2000))


def test_fps_start_deterministic(rng):
    x = rng.uniform(size=(500, 2))
    a = furthest_point_sampling(x, 0.1, seed=None)
    assert 0 in a
    np.testing.assert_array_equal(furthest_point_sampling(x, 0.1, seed=3), furthest_point_sampling(x, 0.1, seed=3))
    with pytest.raises(ValueError, match="spacing"):
        furthest_point_sampling(x, -1.0)
