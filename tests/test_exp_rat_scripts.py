"""The rat screening scripts of issue 16 (benchmarks/exp_rat_*.py): candidate routing, ensembles, CV diagnostics."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import exp_rat_ensemble_decoding as ens_dec  # noqa: E402
import exp_rat_screen as screen  # noqa: E402


def test_candidates_split_into_flow_field_marble_and_ensemble_changes():
    flow, marble, ensemble = screen.split_changes({"epochs": 300, "flow_field": {"smooth": 0.3},
                                                   "ensemble": {"n_members": 2, "combine": "concat"}})
    assert (flow, marble, ensemble) == ({"smooth": 0.3}, {"epochs": 300}, {"n_members": 2, "combine": "concat"})
    assert screen.split_changes({}) == ({}, {}, {})
    for name, changes in screen.CANDIDATES.items():  # every key is a flow-field input or a MARBLE parameter
        from marble_widgets.estimator import PARAMETERS

        flow, marble, _ = screen.split_changes(changes)
        assert set(flow) <= {"n_components", "smooth"}, name
        assert set(marble) <= set(PARAMETERS), name


def test_each_flow_field_has_its_own_cache_folder(tmp_path):
    assert screen.cache_for(tmp_path, {}) == tmp_path  # the recipe's input: the old caches stay valid
    a, b = screen.cache_for(tmp_path, {"smooth": 0.3}), screen.cache_for(tmp_path, {"smooth": 0.15})
    assert a.parent == tmp_path and a != b and a.name == "ff_smooth0.3"


def test_ensemble_candidates_put_disjoint_member_seeds_side_by_side(monkeypatch, tmp_path):
    import seed_stability

    calls = []

    def member(seed: int, n: int) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, 2))

    def fake_fit(ff_tr, ff_te, params, seed, cache):  # a random embedding per seed
        calls.append(seed)
        return member(seed, 6), member(100 + seed, 3)

    monkeypatch.setattr(seed_stability, "cached_fit", fake_fit)
    ff = xr.Dataset({"position": ("sample", np.linspace(0, 1, 6)), "direction": ("sample", ["left", "right"] * 3)})
    out = screen.embeddings(ff, ff, {}, {"n_members": 3, "combine": "concat"}, (0, 1), tmp_path)
    assert calls == [0, 1, 2, 3, 4, 5]
    assert [z_tr.shape for z_tr, _ in out] == [(6, 6), (6, 6)] and out[0][1].shape == (3, 6)
    for e, (z_tr, z_te) in enumerate(out):  # member e*3+i in block i, rotated (norms and dot products kept)
        for i in range(3):
            block, want = z_tr[:, 2 * i:2 * i + 2], member(3 * e + i, 6)
            np.testing.assert_allclose(block @ block.T, want @ want.T, atol=1e-9)
            np.testing.assert_allclose(np.linalg.norm(z_te[:, 2 * i:2 * i + 2], axis=1),
                                       np.linalg.norm(member(100 + 3 * e + i, 3), axis=1), atol=1e-9)
    calls.clear()
    singles = screen.embeddings(ff, ff, {}, {}, (4, 7), tmp_path)
    assert calls == [4, 7]
    np.testing.assert_array_equal(singles[1][0], member(7, 6))


def test_fold_table_picks_the_same_k_as_the_decoders_median_rule():
    from marble_widgets.analysis.decoding import choose_k

    rng = np.random.default_rng(0)
    y = np.abs(np.sin(np.linspace(0, 12 * np.pi, 600)))  # a back-and-forth track
    z = np.c_[np.cos(3 * y), np.sin(3 * y), 0.3 * rng.standard_normal((600, 3))] + 2.0
    table = ens_dec.cv_by_fold(z, y, ks=(1, 5, 10, 20))
    assert set(table) == {"1", "5", "10", "20"} and all(len(v) == 5 for v in table.values())
    means = {int(k): np.mean(v) for k, v in table.items()}
    assert min(means, key=means.get) == choose_k(z, y, metric="cosine", candidates=(1, 5, 10, 20),
                                                 criterion="median_abs_error")
    # fold 0 by hand: train on rows 120.., predict rows ..120 with the 5 nearest by cosine distance
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    nearest = np.argsort(-zn[:120] @ zn[120:].T, axis=1)[:, :5] + 120
    assert table["5"][0] == pytest.approx(np.median(np.abs(y[nearest].mean(axis=1) - y[:120])) * 100)
