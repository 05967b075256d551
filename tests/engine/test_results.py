"""Per-sample results of a geometry: sorted neighbours and transported neighbour vectors."""
from __future__ import annotations

import numpy as np

from marble_widgets.engine.geometry import build_geometry
from marble_widgets.engine.results import result_variables, sorted_neighbors


def test_neighbours_are_sorted_by_distance_padded_and_cut():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [10.0, 10.0], [10.0, 11.0], [11.0, 10.0]])
    g = build_geometry(x, np.ones_like(x), np.array([0, 0, 0, 0, 1, 1, 1]), k=2, delta=10.0)
    nb, eid = sorted_neighbors(g, max_neighbors=10)
    for node in range(g.n_nodes):
        row = nb[node][nb[node] >= 0]
        expected = np.unique(g.edge_index[1][g.edge_index[0] == node])
        np.testing.assert_array_equal(np.sort(row), expected)  # exactly the graph neighbours
        dist = np.linalg.norm(g.pos[row] - g.pos[node], axis=1)
        assert np.all(np.diff(dist) >= 0)  # nearest first
        np.testing.assert_array_equal(g.edge_index[:, eid[node][: len(row)]], [[node] * len(row), row])
    assert nb[0, 0] == 1 and (nb[4] >= 4).sum() == 2 and nb[4, 2:].max(initial=-1) == -1
    cut, _ = sorted_neighbors(g, max_neighbors=1)
    np.testing.assert_array_equal(cut[:, 0], nb[:, 0])
    assert cut.shape == (7, 1)


def test_transported_vectors_are_the_connection_times_the_frame_coordinates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    v = np.cross(x, [0.0, 0.0, 1.0])
    g = build_geometry(x, v, k=8, local_gauges=True)
    n = g.n_nodes
    out = result_variables(g, np.zeros((n, 1)), np.zeros((n, 2)), n_samples=n + 1, max_neighbors=4)
    nb = out["neighbors"][1]
    moved = out["transported"][1]
    assert nb.shape == (n + 1, 4) and moved.shape == (n + 1, 4, 2)
    assert (nb[n] == -1).all() and np.isnan(out["embedding"][1][n]).all()  # a sample without a node
    i, slot = 5, 2
    j = nb[i, slot]
    edge = np.flatnonzero((g.edge_index[0] == i) & (g.edge_index[1] == j))[0]
    expected = g.connections[edge] @ (g.frames[j].T @ g.signal[j])
    np.testing.assert_allclose(moved[i, slot], expected, atol=1e-12)
    assert np.isnan(moved[nb == -1]).all()
