"""benchmarks/exp_macaque_recipes.py's seed-to-seed consistency (issue 16): the macaque analogue of the rat's.

Seeds' embeddings of the same held-out trials are compared after averaging in reach condition x time-step bins
(``mw.analysis.consistency``), and sample by sample (CEBRA's ``between="runs"``); both against values computed
here independently, with random embeddings as the chance level.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.stats import special_ortho_group

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import exp_macaque_recipes as mr  # noqa: E402

SECTORS = ("0deg", "45deg", "135deg", "180deg", "225deg", "315deg")
TIMES = np.round(np.arange(-0.24, 0.43, 0.02), 2)  # the 34 steps of a held-out flow field


def _trials(per_sector: tuple[int, ...] = (1, 2, 3, 1, 2, 3)) -> xr.Dataset:
    """Held-out trials (ids not 0..n-1, as a fold's are) with their reach condition and 20-ms bins."""
    conditions = np.repeat(SECTORS, per_sector)
    ids = 3 * np.arange(len(conditions)) + 5
    return xr.Dataset({"condition": ("trial", conditions)}, coords={"trial": ids}, attrs={"bin_size": 0.02})


def _flow_field(trials: xr.Dataset) -> xr.Dataset:
    """One sample per (trial, time step), trial-major, as the recipe's flow fields are."""
    trial = np.repeat(trials["trial"].values, len(TIMES))
    return xr.Dataset(coords={"trial": ("sample", trial), "time": ("sample", np.tile(TIMES, trials.sizes["trial"]))})


def _behaviour_embedding(ff: xr.Dataset, trials: xr.Dataset, dim: int, seed: int) -> np.ndarray:
    """A smooth function of reach angle and time, plus a little trial noise."""
    rng = np.random.default_rng(seed)
    angle = np.deg2rad([int(c[:-3]) for c in trials["condition"].sel(trial=ff["trial"].values).values])
    t = ff["time"].values
    freq = np.arange(1, dim + 1)
    z = np.cos(freq * angle[:, None] + 3 * t[:, None] * freq) + t[:, None] * np.sin(freq * angle[:, None])
    return z + 0.05 * rng.standard_normal(z.shape)


def _binned_by_hand(z: np.ndarray, ff: xr.Dataset, trials: xr.Dataset) -> np.ndarray:
    """Unit-norm mean per (condition, time step), a plain loop (no empty bins here)."""
    condition = trials["condition"].sel(trial=ff["trial"].values).values
    step = np.round((ff["time"].values - TIMES[0]) / 0.02).astype(int)
    means = np.array([z[(condition == c) & (step == s)].mean(axis=0) for c in sorted(set(condition))
                      for s in range(len(TIMES))])
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def _r2(a: np.ndarray, b: np.ndarray) -> float:
    """R^2 of the least-squares affine map a -> b (uniform average over outputs), by lstsq."""
    design = np.c_[a, np.ones(len(a))]
    resid = b - design @ np.linalg.lstsq(design, b, rcond=None)[0]
    return float(np.mean(1 - (resid**2).sum(axis=0) / ((b - b.mean(axis=0)) ** 2).sum(axis=0)))


def test_time_bins_put_every_step_in_its_own_bin():
    bins, (lo, hi) = mr.time_bins(TIMES, 0.02)
    assert bins == 34 and lo == pytest.approx(-0.25) and hi == pytest.approx(0.43)
    index = np.floor((TIMES - lo) / (hi - lo) * bins).astype(int)
    np.testing.assert_array_equal(index, np.arange(34))


def test_binning_is_reach_condition_by_time_step_with_exact_counts(monkeypatch):
    import marble_widgets.analysis as analysis

    trials = _trials()
    ff = _flow_field(trials)
    seen, real = {}, analysis.consistency

    def spy(embeddings, label, **kw):
        seen.update(embeddings=embeddings, label=label, **kw)
        return real(embeddings, label, **kw)

    monkeypatch.setattr(analysis, "consistency", spy)
    mr.seed_consistency([_behaviour_embedding(ff, trials, 4, s) for s in (0, 1)], ff, trials)
    assert (seen["label"], seen["by"], seen["bins"]) == ("time", "condition", 34)
    binned = analysis.binned_means(seen["embeddings"]["0"], "time", seen["bins"], seen["range"], by="condition")
    assert binned.shape == (6, 34, 4)
    counts = dict(zip(SECTORS, (1, 2, 3, 1, 2, 3)))
    for sector in binned["condition"].values:
        np.testing.assert_array_equal(binned["count"].sel(condition=sector).values, np.full(34, counts[sector]))
    assert (binned["fill_width"].values == 0).all()


def test_consistency_is_one_for_maps_of_an_embedding_and_matches_a_hand_computation():
    trials = _trials()
    ff = _flow_field(trials)
    z = _behaviour_embedding(ff, trials, 5, 0)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 5)) + 3 * np.eye(5)  # invertible, not orthogonal
    assert abs(np.linalg.det(a)) > 1
    similarity = 2.5 * special_ortho_group.rvs(5, random_state=3)
    # sample by sample (CEBRA's runs): any invertible affine map gives exactly 1
    runs = mr.runs_consistency([z, z @ a + 4.0])
    assert runs["mean"] == pytest.approx(1.0, abs=1e-12) and runs["min"] == pytest.approx(1.0, abs=1e-12)
    # binned: bins are unit-norm means (CEBRA's definition), so a rotation and scale gives exactly 1 ...
    assert mr.seed_consistency([z, z @ similarity], ff, trials)["min"] == pytest.approx(1.0, abs=1e-10)
    # ... and a general invertible map the R^2 of the normalised bin means, computed here by hand
    b = z @ a + 4.0
    expected = [_r2(_binned_by_hand(z, ff, trials), _binned_by_hand(b, ff, trials)),
                _r2(_binned_by_hand(b, ff, trials), _binned_by_hand(z, ff, trials))]
    got = mr.seed_consistency([z, b], ff, trials)
    assert got["min"] == pytest.approx(min(expected), abs=1e-10)
    assert got["max"] == pytest.approx(max(expected), abs=1e-10)


def test_runs_consistency_is_cebras_between_runs_score():
    metrics = pytest.importorskip("cebra.integrations.sklearn.metrics")
    rng = np.random.default_rng(2)
    embs = [rng.standard_normal((300, d)) @ rng.standard_normal((d, d)) for d in (3, 3, 5)]
    embs[1] = embs[0] @ rng.standard_normal((3, 3)) + 0.5 * rng.standard_normal((300, 3))
    scores, _, _ = metrics.consistency_score([e.copy() for e in embs], between="runs")
    ours = mr.runs_consistency(embs)
    assert ours["mean"] == pytest.approx(float(np.mean(scores)), abs=1e-12)
    assert ours["min"] == pytest.approx(float(np.min(scores)), abs=1e-12)


def test_independent_random_embeddings_score_at_the_chance_level():
    trials = _trials((2, 2, 2, 2, 2, 2))
    ff = _flow_field(trials)
    n = ff.sizes["sample"]
    chance = mr.chance_scores(((n, 6), (n, 6)), (ff, trials), (ff, trials))
    # expected in-sample R^2 of a 6-regressor affine fit to unrelated data: about 6 / (rows - 1)
    assert chance["full"]["mean"] == pytest.approx(6 / (6 * 34 - 1), abs=0.02)
    assert chance["full, samples"]["mean"] == pytest.approx(6 / (n - 1), abs=0.01)
    rng = np.random.default_rng(7)
    other = [{"fit": rng.standard_normal((n, 6)), "held": rng.standard_normal((n, 6))} for _ in range(5)]
    scores = mr.view_scores(other, "held", (ff, trials), (ff, trials))
    for view in ("full", "full, samples", "3 axes", "3 axes, samples", "3 behaviour axes", "3 behaviour axes, samples"):
        assert scores[view]["mean"] == pytest.approx(chance[view]["mean"], abs=0.02), view
    assert chance["3 axes"]["mean"] < 0.05 and scores["full"]["max"] < 0.15


def test_three_axes_view_uses_the_training_rows_principal_axes():
    trials = _trials()
    ff = _flow_field(trials)
    base = _behaviour_embedding(ff, trials, 3, 0)
    n, rng, embs = len(base), np.random.default_rng(3), []
    for seed in (4, 5):  # each seed: its own rotation of 3 shared latents, 3 noise latents absent from its fit rows
        r = special_ortho_group.rvs(3, random_state=seed)
        noise = 5 * rng.standard_normal((n, 3))
        embs.append({"fit": np.c_[10 * base @ r, np.zeros((n, 3))], "held": np.c_[base @ r, noise]})
    scores = mr.view_scores(embs, "held", (ff, trials), (ff, trials))
    assert scores["3 axes"]["min"] == pytest.approx(1.0, abs=1e-10)
    assert scores["3 axes, samples"]["min"] == pytest.approx(1.0, abs=1e-10)
    assert scores["full"]["max"] < 0.9


def test_behaviour_axes_are_those_of_the_condition_by_time_means_not_of_the_rows():
    trials = _trials((2, 2, 2, 2, 2, 2))  # trials in pairs of one condition
    ff = _flow_field(trials)
    base = _behaviour_embedding(ff, trials, 3, 0)
    sign = np.repeat(np.tile([1.0, -1.0], 6), len(TIMES))[:, None]
    rng, embs = np.random.default_rng(5), []
    for seed in (4, 5):  # training rows: most variance in 3 latents that cancel in every condition x time mean
        r = special_ortho_group.rvs(3, random_state=seed)
        cancelling = 20 * sign * np.tile(rng.standard_normal((len(TIMES), 3)), (12, 1))
        embs.append({"fit": np.c_[base @ r, cancelling], "held": np.c_[base @ r, rng.standard_normal((len(base), 3))]})
    centre, basis = mr.behaviour_axes(embs[0]["fit"], (ff, trials), 3)
    np.testing.assert_allclose(basis[3:], 0.0, atol=1e-10)  # the behaviour axes ignore the cancelling latents
    scores = mr.view_scores(embs, "held", (ff, trials), (ff, trials))
    assert scores["3 behaviour axes"]["min"] == pytest.approx(1.0, abs=1e-10)
    assert scores["3 behaviour axes, samples"]["min"] == pytest.approx(1.0, abs=1e-10)
    assert scores["3 axes"]["max"] < 0.3  # the rows' own leading axes are the cancelling latents


def test_member_columns_split_side_by_side_ensembles_only():
    from marble_widgets import recipes

    six = mr.member_columns(recipes.get("macaque_ensemble_diverse6"), 120)
    assert [(c.start, c.stop) for c in six] == [(20 * i, 20 * i + 20) for i in range(6)]
    assert [(c.start, c.stop) for c in mr.member_columns(recipes.get("macaque_ensemble_concat"), 60)] == [
        (0, 20), (20, 40), (40, 60)]
    assert mr.member_columns(recipes.get("macaque_tuned"), 20) == []


def test_summary_is_mean_and_sd_over_folds_with_the_lowest_pair():
    fold = [{"full": {"mean": 0.9, "min": 0.8, "max": 0.95}, "members": [{"full": {"mean": 0.5, "min": 0.4,
                                                                                    "max": 0.6}}]},
            {"full": {"mean": 0.7, "min": 0.6, "max": 0.75}, "members": [{"full": {"mean": 0.3, "min": 0.1,
                                                                                    "max": 0.5}}]}]
    out = mr.consistency_summary(fold)
    assert out["full"].pop("per_fold") == [0.9, 0.7]
    assert out["full"] == pytest.approx({"mean": 0.8, "sd": 0.1, "min": 0.6, "max": 0.95})
    assert out["members"][0]["full"]["min"] == 0.1 and out["members"][0]["full"]["mean"] == pytest.approx(0.4)
    assert mr.consistency_summary([[0.5, 0.3], [0.3, 0.1]]) == pytest.approx([0.4, 0.2])  # a spectrum
    assert mr.consistency_summary([{"members": []}, {"members": []}]) == {"members": []}  # a single model


def test_spectrum_is_the_variance_fraction_per_principal_axis():
    q = np.linalg.qr(np.random.default_rng(0).standard_normal((200, 3)) - 1.0)[0]
    q = np.linalg.qr(q - q.mean(axis=0))[0]  # orthonormal, zero-mean columns
    z = q * np.array([1.0, 3.0, 2.0]) + 7.0
    assert mr.spectrum(z, 2) == pytest.approx([9 / 14, 4 / 14])


def test_split_consistency_reads_the_real_fold_with_fitted_embeddings_replaced(monkeypatch, tmp_path):
    """Wiring on outer fold 0 (no fits): seeds that differ by a rotation score 1, noise scores near chance."""
    def fake(split, name, seed, parts, cache):
        width = 120 if "diverse6" in name else 6
        rot = special_ortho_group.rvs(width, random_state=seed)
        (fit_ff,), (held_ff,) = mr.recipe_flow_fields(mr.recipes.get("macaque_tuned"), *parts)
        out = {}
        for part, ff, trials in (("fit", fit_ff, parts[0]), ("held", held_ff, parts[1])):
            angle, t = trials["reach_angle"].sel(trial=ff["trial"].values).values, ff["time"].values
            base = np.tile(np.c_[np.cos(angle), np.sin(angle), t, t**2, np.cos(angle) * t, np.sin(2 * angle)],
                           (1, width // 6))
            out[part] = base @ rot if seed < 2 else np.random.default_rng(seed).standard_normal(base.shape)
        return {"fit": out["fit"], "own": out["held"], "support": out["held"]}

    monkeypatch.setattr(mr, "cached_embedding", fake)
    same = mr.split_consistency("outer0", ["macaque_tuned"], [0, 1], tmp_path)["package: macaque_tuned (support)"]
    assert same["full"]["min"] == pytest.approx(1.0, abs=1e-9)
    assert same["full, samples"]["min"] == pytest.approx(1.0, abs=1e-9) and same["members"] == []
    noise = mr.split_consistency("outer0", ["macaque_tuned"], [2, 3], tmp_path)["package: macaque_tuned (own)"]
    assert noise["full"]["mean"] == pytest.approx(noise["chance"]["full"]["mean"], abs=0.03)
    six = mr.split_consistency("outer0", ["macaque_ensemble_diverse6"], [0, 1], tmp_path, axes=(2, 5))
    six = six["package: macaque_ensemble_diverse6 (support)"]
    assert len(six["members"]) == 6 and set(six["members"][0]) == set(six["chance"])
    assert set(six["chance"]) == {"full", "full, samples"} | {f"{n} {kind}{score}" for n in (2, 5) for kind in (
        "axes", "behaviour axes") for score in ("", ", samples")}
    assert six["training rows"]["full"]["min"] == pytest.approx(1.0, abs=1e-9)  # the fit rows: fold 0's 60 trials
    assert len(six["spectrum"]) == mr.N_SPECTRUM and sum(six["spectrum"][:6]) == pytest.approx(1.0)  # rank 6


def test_consistency_needs_two_seeds():
    with pytest.raises(SystemExit):
        mr.main(["--folds", "0", "--only", "macaque_tuned", "--seeds", "0", "--consistency"])


def test_cache_is_keyed_by_the_committed_package_tree():
    import subprocess

    root = Path(__file__).resolve().parents[1]
    tree = subprocess.run(["git", "rev-parse", "HEAD:marble_widgets"], cwd=root, capture_output=True, text=True)
    if tree.returncode != 0:
        pytest.skip("not a git checkout")
    assert mr.code_version() == tree.stdout.strip()[:12] and len(mr.code_version()) == 12
