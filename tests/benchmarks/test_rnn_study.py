"""Fast checks of the RNN study's helpers: field selection, CCA alignment, ordering score, consistency."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import marble_widgets as mw
from marble_widgets.data.containers import make_flow_field

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import rnn_study as R  # noqa: E402

GAINS = [1.0, 0.5, 0.0]


@pytest.fixture(scope="module")
def small() -> xr.Dataset:
    return mw.datasets.rnn_gain_modulation("trained0", gains=GAINS, n_trajectories=3, seed=0)


def _relabel(ds: xr.Dataset, name: str, x: np.ndarray, v: np.ndarray) -> xr.Dataset:
    """The same samples as another network's, with new positions and vectors."""
    cond = np.char.replace(ds["condition"].values.astype(str), "trained0", name)
    return make_flow_field(x, v, condition=cond, trial=ds["trial"].values, time=ds["time"].values,
                           dim_names=list(ds["dim"].values),
                           sample_coords={"network": np.full(ds.sizes["sample"], name), "gain": ds["gain"].values,
                                          "stimulated": ds["stimulated"].values, "epoch": ds["epoch"].values},
                           attrs=ds.attrs)


def test_select_picks_kind_network_and_first_trajectories(small):
    stim = R.select(small, True, ["trained0"])
    assert stim["stimulated"].values.all() and stim.sizes["sample"] == 3 * 3 * R.STIM_STEPS
    ctrl = R.select(small, False, None, n_traj=1)
    assert not ctrl["stimulated"].values.any() and ctrl.sizes["sample"] == 3 * R.UNSTIM_STEPS
    assert set(ctrl["trial"].values) == {0, 3, 6}


def test_cca_maps_a_linearly_transformed_network_back_onto_the_reference(small):
    stim = R.select(small, True)
    rng = np.random.default_rng(0)
    mat = rng.standard_normal((3, 3)) + 2 * np.eye(3)
    other = _relabel(stim, "trained1", stim["x"].values @ mat + [1.0, -2.0, 0.5], stim["v"].values @ mat)
    both = xr.concat([stim, other], dim="sample", data_vars="all")
    x, v, corrs = R.cca_align(both, ["trained0", "trained1"])
    n = stim.sizes["sample"]
    np.testing.assert_allclose(corrs["trained1"], 1.0, atol=1e-6)
    np.testing.assert_allclose(x[n:], stim["x"].values, atol=1e-5)
    np.testing.assert_allclose(v[n:], stim["v"].values, atol=1e-5)
    np.testing.assert_array_equal(x[:n], stim["x"].values)  # the reference is left as it is


def test_affine_alignment_maps_an_affine_copy_back_exactly_and_leaves_the_reference(small):
    stim = R.select(small, True)
    rng = np.random.default_rng(1)
    mat = rng.standard_normal((3, 3)) + 2 * np.eye(3)
    shift = np.array([1.0, -2.0, 0.5])
    other = _relabel(stim, "trained1", stim["x"].values @ mat + shift, stim["v"].values @ mat)
    both = xr.concat([other, stim], dim="sample", data_vars="all")  # the reference need not come first
    x, v = R.affine_align(both, ["trained1", "trained0"])
    n = stim.sizes["sample"]
    np.testing.assert_allclose(x[:n], stim["x"].values, atol=1e-8)
    np.testing.assert_allclose(v[:n], stim["v"].values, atol=1e-8)
    np.testing.assert_array_equal(x[n:], stim["x"].values)
    # the map is fitted on condition means only: its linear part is exactly the inverse of ``mat``
    means = R.condition_means(both, "trained1")
    assert means.shape == (len(GAINS) * R.STIM_STEPS, 3)
    coef = np.linalg.lstsq(np.c_[means, np.ones(len(means))], R.condition_means(both, "trained0"), rcond=None)[0]
    np.testing.assert_allclose(coef[:-1], np.linalg.inv(mat), atol=1e-8)
    # condition_means, checked sample by sample: row (gain g, step s) = mean over g's trials of step s
    ref = stim.isel(sample=np.flatnonzero(stim["gain"].values == GAINS[1]))
    trials = np.unique(ref["trial"].values)
    step7 = np.mean([ref["x"].values[ref["trial"].values == t][7] for t in trials], axis=0)
    np.testing.assert_allclose(R.condition_means(both, "trained0")[1 * R.STIM_STEPS + 7], step7, atol=1e-12)


def test_models_take_the_seed_of_their_parameters_or_the_study_seed():
    assert R.training_seed({"seed": 4}) == 4 and R.training_seed({"k": 15}) == R.SEED


def test_ordering_of_clouds_shifted_by_gain_is_perfect(small):
    stim = R.select(small, True)
    shifted = stim["gain"].values[:, None] * np.array([[3.0, 0.0, 0.0]]) + 0.01 * stim["x"].values
    res = R.ordering(R.as_embedding(stim, shifted))
    assert res["spearman"] == pytest.approx(1.0) and res["per_network"] == {"trained0": pytest.approx(1.0)}
    np.testing.assert_allclose(res["dist"].values, res["dist"].values.T)


def test_matrix_consistency_is_one_for_equal_and_minus_one_for_reversed_distances():
    d = xr.DataArray(np.array([[0, 1, 2, 3], [1, 0, 4, 5], [2, 4, 0, 6], [3, 5, 6, 0]], dtype=float))
    rev = xr.DataArray(np.where(np.eye(4, dtype=bool), 0.0, 7.0 - d.values))
    assert R.matrix_consistency({"a": d, "b": d}) == pytest.approx(1.0)
    assert R.matrix_consistency({"a": d, "b": rev}) == pytest.approx(-1.0)


def _scores(value: float) -> dict:
    return {"spearman": value, "per_network": {"trained0": value, "trained1": value / 2}}


def test_table_has_a_joint_row_and_a_control_row_per_agnostic_mode():
    within = {key: {"trained0": 0.5, "trained1": 0.25} for key in
              ("marble", "marble_control", "raw_vectors", "raw_vectors_control", "pca_positions", "cebra_time")}
    keys = [*R.AGNOSTIC_MODES, *(f"{m}_control" for m in R.AGNOSTIC_MODES), "raw_vectors", "pca_positions",
            "cca_positions", "cca_vectors", "affine_positions", "affine_vectors", "cebra_time"]
    joint = {key: _scores(0.1 * (i + 1) / len(keys)) for i, key in enumerate(keys)}
    rows = {row["method"]: row for row in R.table(within, joint)}
    assert R.AGNOSTIC_MODES["marble_invariant"] == {"inner_product_features": "invariant"}
    assert R.AGNOSTIC_MODES["marble_invariant_local"] == {"inner_product_features": "invariant", "local_gauges": True}
    for mode in R.AGNOSTIC_MODES:
        row, control = rows[f"{R.MODE_LABELS[mode]}, joint"], rows[f"{R.MODE_LABELS[mode]}, joint (control)"]
        assert row["joint"] == joint[mode]["spearman"] and row["fields"] == "stimulated"
        assert control["joint"] == joint[f"{mode}_control"]["spearman"] and control["fields"] == "unstimulated"
        assert row["per-network min"] == joint[mode]["spearman"] / 2
    assert rows["MARBLE agnostic (inner products), joint"]["joint"] == joint["marble_agnostic"]["spearman"]
    assert rows["CCA-aligned vectors OT, joint"]["joint"] == joint["cca_vectors"]["spearman"]
    assert rows["affine-aligned vectors OT, joint"]["joint"] == joint["affine_vectors"]["spearman"]
    assert rows["CEBRA-Time OT, joint (unaligned)"]["joint"] == joint["cebra_time"]["spearman"]
    assert rows["MARBLE aware, per network"]["per-network mean"] == 0.375
    assert rows["CEBRA-Time OT, per network"]["per-network min"] == 0.25
    assert len(rows) == 6 + len(keys)
    # a result written before a mode (or without cebra) still tabulates, without those rows
    old = {k: v for k, v in joint.items() if not k.startswith(("marble_invariant", "cebra"))}
    no_cebra = {k: v for k, v in within.items() if k != "cebra_time"}
    assert len(R.table(no_cebra, old)) == 5 + len(keys) - 5


def test_state_scale_is_the_rms_spread_and_speed_of_the_stimulated_states(small):
    stim = R.select(small, True, ["trained0"])
    scale = R.state_scale(small, ["trained0"])["trained0"]
    assert scale["rms_position"] == pytest.approx(np.sqrt(stim["x"].values.var(axis=0).sum()), rel=1e-12)
    assert scale["rms_speed"] == pytest.approx(np.linalg.norm(stim["v"].values) / np.sqrt(stim.sizes["sample"]),
                                               rel=1e-12)


def test_cebra_baseline_embeds_every_sample_on_its_conditions(small):
    pytest.importorskip("cebra")
    stim = R.select(small, True)
    emb = R.cebra_time(stim, {**R.MARBLE_RNN, "seed": 3})
    assert emb.shape == (stim.sizes["sample"], R.MARBLE_RNN["out_dim"]) and np.isfinite(emb.values).all()
    np.testing.assert_array_equal(emb["condition"].values, stim["condition"].values)
    # cosine CEBRA: every embedded sample lies on the unit sphere
    np.testing.assert_allclose(np.linalg.norm(emb.values, axis=1), 1.0, atol=1e-5)
