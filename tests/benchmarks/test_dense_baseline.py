"""The dense benchmark baseline computes what the sparse engine computes (so speed-ups compare equal work)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from dense_baseline import dense_construction, dense_fps  # noqa: E402
from engine_scaling import manifold_cloud, slope  # noqa: E402

from marble_widgets.engine.features import derivative_features  # noqa: E402
from marble_widgets.engine.geometry import build_geometry  # noqa: E402
from marble_widgets.engine.graph import furthest_point_sampling  # noqa: E402
from marble_widgets.engine.laplacian import normalized_laplacian  # noqa: E402

N = 400


@pytest.fixture(scope="module")
def cloud():
    return manifold_cloud(N, seed=3)


@pytest.fixture(scope="module")
def local_pair(cloud):
    x, v = cloud
    g = build_geometry(x, v, k=20, local_gauges=True, seed=0)

    def align(frames):  # PCA directions have arbitrary signs: match the engine's
        return frames * np.sign(np.einsum("nac,nac->nc", frames, g.frames))[:, None, :]

    return g, dense_construction(x, v, k=20, local_gauges=True, spectrum=False, frame_signs=align)


def test_manifold_cloud_is_seeded_and_vectors_are_tangent(cloud, local_pair):
    x, v = cloud
    assert x.shape == v.shape == (N, 5)
    np.testing.assert_array_equal(manifold_cloud(N, seed=3)[0], x)
    assert not np.allclose(manifold_cloud(N, seed=4)[0], x)
    g, _ = local_pair
    inside = np.linalg.norm(np.einsum("nac,nbc,nb->na", g.frames, g.frames, v), axis=1)
    assert np.median(inside / np.linalg.norm(v, axis=1)) > 0.99  # v lies in the local PCA plane


def test_graph_and_dimension_agree(local_pair):
    g, dense = local_pair
    np.testing.assert_array_equal(dense.edge_index, g.edge_index)
    assert dense.manifold_dim == g.n_directions == 3


def test_frames_span_same_tangent_spaces(local_pair):
    g, dense = local_pair
    proj_dense = np.einsum("nac,nbc->nab", dense.frames, dense.frames)
    proj_ours = np.einsum("nac,nbc->nab", g.frames, g.frames)
    np.testing.assert_allclose(proj_dense, proj_ours, atol=1e-8)


def test_local_gauge_connections_and_features_agree(local_pair):
    g, dense = local_pair
    np.testing.assert_allclose(dense.connections, g.connections, atol=1e-8)
    ours = derivative_features(g, order=2, include_self=True)
    assert dense.features.shape == ours.shape == (N, 3 * (1 + 3 + 9))
    np.testing.assert_allclose(dense.features, ours, rtol=1e-7, atol=1e-8)


def test_global_gauge_kernels_features_and_spectrum_agree(cloud):
    x, v = cloud
    g = build_geometry(x, v, k=20, local_gauges=False, seed=0)
    dense = dense_construction(x, v, k=20, local_gauges=False)
    for kd, ks in zip(dense.kernels, g.kernels, strict=True):
        np.testing.assert_allclose(kd, ks.toarray(), atol=1e-12)
    ours = derivative_features(g, order=2, include_self=True)
    np.testing.assert_allclose(dense.features, ours, rtol=1e-9, atol=1e-10)
    lap, _ = normalized_laplacian(g.edge_index, g.edge_weight, g.n_nodes)
    np.testing.assert_allclose(dense.eigenvalues, np.linalg.eigvalsh(lap.toarray()), atol=1e-10)
    assert set(dense.timings) == {"distances+fps", "cknn", "gauges", "kernels", "eigh", "features"}


def test_dense_fps_covers_like_the_engine(cloud):
    x, _ = cloud
    from scipy.spatial.distance import cdist

    dist = cdist(x, x)
    kept = dense_fps(dist, spacing=0.1, start=0)
    ours = furthest_point_sampling(x, spacing=0.1, seed=None)  # seed None starts at index 0
    np.testing.assert_array_equal(kept, ours)
    assert dist[np.ix_(np.arange(N), kept)].min(1).max() / dist.max() < 0.1


def test_slope_recovers_power_law():
    ns = [1e3, 1e4, 1e5]
    assert slope(ns, [2 * n**1.1 for n in ns]) == pytest.approx(1.1)
    assert slope([1e3], [1.0]) is None
