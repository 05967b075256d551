"""Recipes whose ensemble members differ: per-member flow fields and macaque_ensemble_diverse."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import marble_widgets as mw
from marble_widgets import recipes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark scripts whose rows the recipes cite
DIVERSE = recipes.get("macaque_ensemble_diverse")


@pytest.fixture(scope="module")
def trials() -> xr.Dataset:
    """20 trials of the bundled macaque recording (its recipes' bin size)."""
    return mw.datasets.mc_maze_small(bin_size=DIVERSE.extra["bin_size"]).isel(trial=slice(0, 20))


def test_diverse_recipe_is_five_tuned_variants_side_by_side():
    tuned = recipes.get("macaque_tuned")
    assert DIVERSE.marble == tuned.marble and DIVERSE.flow_field == tuned.flow_field
    assert DIVERSE.member_flow_fields() == [{"n_components": 5, "smooth": 0.1}] * 3 + [
        {"n_components": 5, "smooth": 0.05}, {"n_components": 5, "smooth": 0.1}]
    ens = DIVERSE.ensemble(seed=1)
    assert (ens.combine, ens.size, ens.member_seeds) == ("concat", 5, [5, 6, 7, 8, 9])
    got = [(p["k"], p["order"], p["include_positions"], p["seed"]) for p in ens.member_params()]
    assert got == [(30, 2, True, 5), (15, 2, True, 6), (50, 2, True, 7), (30, 2, True, 8), (30, 1, True, 9)]


def test_every_recipe_has_one_flow_field_setting_per_member_or_one_shared():
    for recipe in recipes.RECIPES.values():
        settings = recipe.member_flow_fields()
        if "member_flow_fields" in recipe.extra:
            assert len(settings) == recipe.ensemble().size, recipe.name
        else:
            assert settings == [dict(recipe.flow_field)], recipe.name


def test_flow_fields_are_mw_flow_field_per_member_and_equal_settings_share_one_dataset(trials):
    fields = DIVERSE.flow_fields(trials, condition="condition")
    assert len(fields) == 5 and fields[0] is fields[1] is fields[2] is fields[4] and fields[3] is not fields[0]
    xr.testing.assert_identical(fields[0], mw.flow_field(trials, 5, 0.1, condition="condition"))
    xr.testing.assert_identical(fields[3], mw.flow_field(trials, 5, 0.05, condition="condition"))
    np.testing.assert_array_equal(fields[3]["trial"].values, fields[0]["trial"].values)  # same samples
    np.testing.assert_array_equal(fields[3]["time"].values, fields[0]["time"].values)
    single = recipes.get("macaque_tuned").flow_fields(trials)
    assert len(single) == 1 and single[0]["condition"].values.tolist() == [single[0]["condition"].values[0]] * len(
        single[0]["condition"])


def test_builders_fit_on_one_part_and_reuse_it_on_another(trials):
    fit, held = trials.isel(trial=slice(0, 15)), trials.isel(trial=slice(15, 20))
    builders = DIVERSE.builders(condition="condition")
    assert [(b.n_components, b.smooth, b.condition) for b in builders] == [
        (5, 0.1, "condition")] * 3 + [(5, 0.05, "condition"), (5, 0.1, "condition")]
    by_hand = mw.FlowFieldBuilder(5, 0.05, condition="condition").fit(fit).transform(held)
    builders[3].fit(fit)
    xr.testing.assert_identical(builders[3].transform(held), by_hand)


@pytest.mark.slow
def test_the_recipe_path_fits_and_embeds_held_out_trials_with_support(trials):
    fit, held = trials.isel(trial=slice(0, 15)), trials.isel(trial=slice(15, 20))
    builders = DIVERSE.builders()
    train = [b.fit_transform(fit) for b in builders]
    test = [b.transform(held) for b in builders]
    quick = {**DIVERSE.marble, "epochs": 2, "verbose": False, "hidden_channels": (16,)}
    ens = DIVERSE.ensemble(base=quick).fit(train)
    z = ens.transform(test, support=train)
    assert z.shape == (test[0].sizes["sample"], 5 * DIVERSE.marble["out_dim"]) and np.isfinite(z.values).all()
    parts = [m.transform(t, support=f).values @ r for m, t, f, r in zip(ens.members_, test, train, ens.rotations_)]
    np.testing.assert_allclose(z.values, np.hstack(parts), atol=1e-12)
    assert [m.get_params()["k"] for m in ens.members_] == [30, 15, 50, 30, 30]


def _outer_rows() -> dict[str, dict]:
    rows = json.loads((ROOT / "benchmarks" / "results" / "exp_macaque_outer.json").read_text())["rows"]
    return {r["method"]: r for r in rows if r["folds"] == [0, 1, 2, 3, 4]}


def _consistency_rows() -> dict[str, dict]:
    rows = json.loads((ROOT / "benchmarks" / "results" / "exp_macaque_recipes_consistency.json").read_text())["rows"]
    return {r["method"]: r for r in rows if r["folds"] == [0, 1, 2, 3, 4]}


def _cite(row: dict) -> str:
    return f"{row['r2_mean']:.3f} ± {row['r2_sd']:.3f}"


def test_diverse_sources_cite_their_package_rows_measured_with_two_and_five_seeds():
    rows = _outer_rows()
    diverse = rows["package: macaque_ensemble_diverse (support)"]
    for row in (diverse, rows["package: macaque_ensemble_concat (support)"]):
        assert row["groups"] == ["seed 0", "seed 1"] and "exp_macaque_recipes.py" in row["command"]
    six_rows = _consistency_rows()
    six = six_rows["package: macaque_ensemble_diverse6 (support)"]
    assert six["groups"] == [f"seed {s}" for s in range(5)] and "--seeds 0 1 2 3 4" in six["command"]
    six_source = recipes.get("macaque_ensemble_diverse6").source
    assert _cite(six_rows["package: macaque_ensemble_diverse6 (own)"]) in six_source
    assert f"consistency of the held-out embedding {six['consistency']['full, samples']['mean']:.3f}" in six_source
    assert _cite(diverse) in DIVERSE.source and _cite(rows["package: macaque_ensemble_diverse (own)"]) in DIVERSE.source
    assert _cite(rows["package: macaque_ensemble_concat (support)"]) in DIVERSE.source
    assert _cite(rows["package: macaque_tuned (support)"]) in DIVERSE.source
    assert f"{rows['input PCA-5']['r2_mean']:.3f}" in DIVERSE.source
    assert _cite(six) in six_source
    hand = rows["tuned + k 15 + k 50 + 50 ms + order 1 (joint graph)"]
    assert _cite(hand) in DIVERSE.source


def test_diverse_notes_cite_the_training_data_evidence():
    inner = json.loads((ROOT / "benchmarks" / "results" / "exp_macaque_members.json").read_text())["rows"]
    diverse_inner = [r["r2"] for r in inner if r["split"] == "inner" and r["mode"] == "joint" and not r["with_input"]
                     and r["row"].startswith("tuned:") and r["row"].count(",") == 4 and "k15" in r["row"]]
    assert len(diverse_inner) == 3 and f"{np.mean(diverse_inner):.3f} ± {np.std(diverse_inner):.3f}" in DIVERSE.notes
    pooled = json.loads((ROOT / "benchmarks" / "results" / "exp_macaque_recipes_inner.json").read_text())["rows"]
    pooled = {r["method"]: r["r2_mean"] for r in pooled if r["folds"] == [0, 1, 2, 3, 4]}
    notes = recipes.get("macaque_ensemble_diverse6").notes
    for name in ("diverse + 150 ms", "macaque_ensemble_diverse", "macaque_tuned"):
        assert f"{pooled[f'package: {name} (support)']:.3f} / {pooled[f'package: {name} (own)']:.3f}" in notes
    assert pooled["package: diverse + 150 ms (support)"] > pooled["package: macaque_ensemble_diverse (support)"]


def test_diverse6_is_the_diverse_recipe_plus_a_150_ms_member_and_the_benchmarked_candidate():
    six = recipes.get("macaque_ensemble_diverse6")
    assert six.marble == DIVERSE.marble and six.flow_field == DIVERSE.flow_field
    assert six.member_flow_fields() == DIVERSE.member_flow_fields() + [{"n_components": 5, "smooth": 0.15}]
    assert list(six.extra["ensemble"]["members"]) == [*DIVERSE.extra["ensemble"]["members"], {}]
    from exp_macaque_recipes import CANDIDATES

    measured = CANDIDATES["diverse + 150 ms"]
    assert (measured.marble, measured.member_flow_fields()) == (six.marble, six.member_flow_fields())
    assert measured.ensemble().get_params() == six.ensemble().get_params()


def _rat_diverse_json() -> dict:
    return json.loads((ROOT / "benchmarks" / "results" / "exp_rat_diverse.json").read_text())


def _protocol_rows(data: dict) -> dict[str, dict]:
    return {r["method"]: r for r in data["rows"] if r["split"] == "protocol"}


def test_rat_ensemble_diverse_builds_the_members_chosen_on_the_inner_split():
    from exp_rat_diverse import recipe_members

    rat = recipes.get("rat_ensemble_diverse")
    recommended = recipes.get("rat_recommended")
    assert rat.marble == recommended.marble and rat.flow_field == recommended.flow_field
    chosen = _rat_diverse_json()["inner"]["chosen without v x3"]
    marble, flow = recipe_members(chosen)
    assert list(rat.extra["ensemble"]["members"]) == marble and list(rat.extra["member_flow_fields"]) == flow
    assert [(f["n_components"], f["smooth"]) for f in rat.member_flow_fields()] == [
        (10, 0.25), (10, 0.4), (10, 0.15), (12, 0.25), (10, 0.4), (10, 0.25)]
    ens = rat.ensemble(seed=2)
    assert (ens.combine, ens.size, ens.member_seeds) == ("concat", 6, [12, 13, 14, 15, 16, 17])
    got = [(p["k"], p["order"], p["include_positions"], p["seed"]) for p in ens.member_params()]
    assert got == [(200, 1, True, s) for s in range(12, 17)] + [(300, 1, True, 17)]
    assert [(b.n_components, b.smooth) for b in rat.builders()] == [
        (f["n_components"], f["smooth"]) for f in rat.member_flow_fields()]


def test_rat_ensemble_diverse_source_cites_its_protocol_row_and_meets_the_issue_16_margin():
    data = _rat_diverse_json()
    rows = _protocol_rows(data)
    run = rows["diverse: " + " + ".join(data["inner"]["chosen without v x3"])]
    source = recipes.get("rat_ensemble_diverse").source
    assert len(run["per_seed"]) == 5 and run["command"].removeprefix("python ") in " ".join(source.split())
    for row in (run, rows["rat_ensemble_concat (5 x recommended)"]):
        assert f"{row['cm_k_by_median']} / {row['cm_k_by_r2']}" in source
    x = data["protocol"]["input"]
    assert f"{x['cm_k_by_median']:.2f} / {x['cm_k_by_r2']:.2f}" in source
    for tag in ("k_by_median", "k_by_r2"):  # at least 10 % below the PCA-10 input's error, both k rules
        assert run[f"cm_{tag}_mean"] <= 0.9 * x[f"cm_{tag}"] == data["protocol"]["targets_cm"][tag]


def test_rat_ensemble_diverse_through_the_package_decodes_as_its_hand_assembled_row():
    data = _rat_diverse_json()
    rows = _protocol_rows(data)
    package = rows["package: rat_ensemble_diverse"]
    hand = rows["diverse: " + " + ".join(data["inner"]["chosen without v x3"])]
    assert [r["seeds"] for r in package["per_seed"]] == [r["seeds"] for r in hand["per_seed"]]
    for tag in ("cm_k_by_median", "cm_k_by_r2"):
        np.testing.assert_allclose([r[tag] for r in package["per_seed"]], [r[tag] for r in hand["per_seed"]], atol=1e-9)
    # the package's embeddings agree across ensemble seeds as the notes say, well above chance
    c = package["consistency"]
    notes = recipes.get("rat_ensemble_diverse").notes
    assert f"consistency {c['full']['mean']:.3f}, 3 leading axes {c['3 axes']['mean']:.3f}" in notes
    assert c["3 axes"]["min"] >= 0.95 > c["chance"]["3 axes"]["max"]
    assert f"SD with k by median error ({package['cm_k_by_median_sd']:.2f} cm)" in notes


def test_rat_ensemble_diverse12_is_every_diverse_member_twice_with_its_own_seed():
    from exp_rat_diverse import doubled, recipe_members

    six, twelve = recipes.get("rat_ensemble_diverse"), recipes.get("rat_ensemble_diverse12")
    assert (twelve.marble, twelve.flow_field) == (six.marble, six.flow_field)
    marble, flow = recipe_members(doubled(_rat_diverse_json()["inner"]["chosen without v x3"]))
    assert list(twelve.extra["ensemble"]["members"]) == marble and list(twelve.extra["member_flow_fields"]) == flow
    assert twelve.member_flow_fields()[0::2] == twelve.member_flow_fields()[1::2] == six.member_flow_fields()
    ens = twelve.ensemble(seed=3)
    assert (ens.combine, ens.size, ens.member_seeds) == ("concat", 12, list(range(36, 48)))
    assert [p["k"] for p in ens.member_params()] == [200] * 10 + [300] * 2


def test_rat_ensemble_diverse12_meets_issue_16s_margin_and_seed_targets_as_its_source_says():
    from exp_rat_diverse import doubled

    data = _rat_diverse_json()
    rows, recipe = _protocol_rows(data), recipes.get("rat_ensemble_diverse12")
    run = rows["diverse: " + " + ".join(doubled(data["inner"]["chosen without v x3"]))]
    assert run["command"].removeprefix("python ") in " ".join(recipe.source.split())
    assert f"{run['cm_k_by_median']} / {run['cm_k_by_r2']}" in recipe.source
    targets = data["protocol"]["targets_cm"]
    for tag in ("k_by_median", "k_by_r2"):  # the pre-registered rule (exp_rat_diverse.py docstring)
        assert run[f"cm_{tag}_mean"] <= targets[tag] and run[f"cm_{tag}_sd"] <= 0.2
        assert len({r[f"k_{tag}"] for r in run["per_seed"]}) == 1  # the decoder's k does not flip with the seed
    assert run["consistency"]["full"]["min"] >= 0.95 and run["consistency"]["3 axes"]["min"] >= 0.95
    package = rows["package: rat_ensemble_diverse12"]  # the recipe through the package decodes the same
    assert [r["seeds"] for r in package["per_seed"]] == [r["seeds"] for r in run["per_seed"]]
    for tag in ("cm_k_by_median", "cm_k_by_r2"):
        np.testing.assert_allclose([r[tag] for r in package["per_seed"]], [r[tag] for r in run["per_seed"]],
                                   atol=1e-9)
