"""The recipe table: the paper's settings, the training-chosen ones, and the time split."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import marble_widgets as mw
from marble_widgets import demo, recipes

ROOT = Path(__file__).resolve().parents[1]


def test_rat_tuned_is_the_paper_recipe_with_the_settings_chosen_on_the_training_part():
    chosen = json.loads((ROOT / "benchmarks" / "results" / "fidelity_tuning.json").read_text())["chosen"]
    paper, tuned = recipes.get("rat_paper"), recipes.get("rat_tuned")
    changed = {k for k in tuned.marble if tuned.marble[k] != paper.marble.get(k)}
    assert changed == {"batch_size", "k", "hidden_channels"}
    for key in changed:
        want = tuple(chosen[key]) if isinstance(chosen[key], list) else chosen[key]
        assert tuned.marble[key] == want, key
    assert tuned.flow_field == paper.flow_field == {"n_components": 10, "smooth": 0.25}
    assert demo.RECIPE is tuned


def test_paper_recipes_match_the_paper():
    rat, mc = recipes.get("rat_paper").marble, recipes.get("macaque_paper").marble
    assert (rat["order"], rat["k"], rat["out_dim"], rat["emb_norm"], rat["diffusion"]) == (1, 15, 32, True, False)
    assert (mc["order"], mc["k"], mc["out_dim"], mc["diffusion"]) == (2, 30, 20, True)
    assert rat["patience"] is None and mc["patience"] is None  # the reference trains every epoch


def test_model_builds_a_fresh_estimator_with_overrides_and_the_table_is_read_only():
    recipe = recipes.get("rat_tuned")
    model = recipe.model(epochs=7, seed=3)
    assert isinstance(model, mw.MARBLE)
    params = model.get_params()
    assert params["epochs"] == 7 and params["seed"] == 3 and params["k"] == 50 and params["batch_size"] == 256
    assert recipe.marble["epochs"] == 100  # the override did not leak into the table
    with pytest.raises(TypeError):
        recipes.RECIPES["mine"] = recipe  # type: ignore[index]


def test_unknown_recipe_names_the_choices():
    with pytest.raises(KeyError, match=r"no recipe named 'rat'; choose one of "
                                      r"\['macaque_ensemble_concat', 'macaque_ensemble_diverse', "
                                      r"'macaque_ensemble_diverse6', 'macaque_paper', "):
        recipes.get("rat")


def _recording(n: int) -> xr.Dataset:
    return xr.Dataset({"spike_counts": (("time", "unit"), np.arange(2 * n).reshape(n, 2))},
                      coords={"time": np.arange(n) * 0.1})


def test_split_time_cuts_at_the_rounded_fraction():
    train, test = recipes.split_time(_recording(11), 0.8)
    assert train.sizes["time"] == 9 and test.sizes["time"] == 2
    np.testing.assert_array_equal(test["time"].values, [0.9, 1.0])


@pytest.mark.parametrize("fraction, message", [(1.0, r"need 0 <= start < train_fraction < 1"), (0.01, "leaves an empty part of 11 bins")])
def test_split_time_refuses_empty_parts(fraction, message):
    with pytest.raises(ValueError, match=message):
        recipes.split_time(_recording(11), fraction)


def test_split_time_needs_a_time_dimension():
    with pytest.raises(ValueError, match=r"needs a recording with a 'time' dimension; got dims \('trial',\)"):
        recipes.split_time(xr.Dataset({"a": ("trial", [1, 2, 3])}), 0.5)


def test_rat_recommended_is_the_tuned_recipe_with_the_seed_stability_changes():
    tuned, recommended = recipes.get("rat_tuned"), recipes.get("rat_recommended")
    changed = {k: v for k, v in recommended.marble.items() if tuned.marble.get(k) != v}
    assert changed == {"k": 200, "lr_schedule": "cosine", "selection": "average", "average_from": 0.5}
    model = recommended.model(epochs=4)
    assert model.get_params()["selection"] == "average" and model.get_params()["patience"] is None


def test_rat_ensemble_is_the_recommended_model_five_times_aligned_on_position_bins_per_direction():
    ens_recipe, recommended = recipes.get("rat_ensemble"), recipes.get("rat_recommended")
    assert ens_recipe.marble == recommended.marble and ens_recipe.flow_field == recommended.flow_field
    ens = ens_recipe.ensemble(seed=2)
    from marble_widgets.ensemble import MARBLEEnsemble

    assert isinstance(ens, MARBLEEnsemble)
    assert ens.n_members == 5 and ens.member_seeds == [10, 11, 12, 13, 14]
    assert (ens.align_on, ens.by) == ("position", "direction")
    measured = json.loads((ROOT / "benchmarks" / "results" / "seed_stability.json").read_text())["ensemble"]
    methods = [r["method"] for r in measured["rows"]]
    assert "recommended, ensemble of 5 (aligned on position bins)" in methods  # the shipped setting was measured
    assert ens.base == dict(recommended.marble) and ens.base is not recommended.marble


def test_recipes_without_ensemble_settings_say_which_have_them():
    with pytest.raises(ValueError, match=r"recipe 'rat_paper' has no ensemble settings; "
                                         r"use .model\(\) or one of \['macaque_ensemble_concat', "
                                         r"'macaque_ensemble_diverse', 'macaque_ensemble_diverse6', "
                                         r"'rat_consistent', "
                                         r"'rat_ensemble', 'rat_ensemble_concat', 'rat_ensemble_diverse', "
                                         r"'rat_ensemble_diverse12'\]"):
        recipes.get("rat_paper").ensemble()


def test_rat_consistent_is_the_recommended_ensemble_projected_to_three_axes_and_was_measured_as_shipped():
    consistent, ensemble = recipes.get("rat_consistent"), recipes.get("rat_ensemble")
    assert consistent.marble == recipes.get("rat_recommended").marble
    assert consistent.extra["ensemble"] == {**ensemble.extra["ensemble"], "n_components": 3}
    ens = consistent.ensemble(seed=1)
    assert ens.n_components == 3 and ens.member_seeds == [5, 6, 7, 8, 9]
    measured = json.loads((ROOT / "benchmarks" / "results" / "seed_stability.json").read_text())["recipes"]
    row = {r["method"]: r for r in measured["rows"]}["rat_consistent"]
    assert row["out_dim"] == 3 and row["n_models"] == 5 and len(row["per_seed"]) == 3
    # the target, on the committed run: ensemble-to-ensemble consistency >= 0.95, decoding SD <= 0.2 cm
    assert row["consistency"]["min"] >= 0.95 and row["cm_k_by_median_sd"] <= 0.2


def test_concat_recipes_put_their_members_side_by_side_and_were_measured_as_shipped():
    rat, mc = recipes.get("rat_ensemble_concat"), recipes.get("macaque_ensemble_concat")
    assert rat.marble == recipes.get("rat_recommended").marble and rat.marble["emb_norm"] is True
    assert mc.marble == recipes.get("macaque_tuned").marble and mc.flow_field == recipes.get("macaque_tuned").flow_field
    assert mc.extra["bin_size"] == recipes.get("macaque_paper").extra["bin_size"]
    ens = rat.ensemble()
    assert (ens.combine, ens.n_members, ens.align_on, ens.n_components) == ("concat", 5, None, None)
    assert mc.ensemble(seed=1).member_seeds == [3, 4, 5]
    measured = json.loads((ROOT / "benchmarks" / "results" / "seed_stability.json").read_text())
    rat_rows = {r["method"]: r for r in measured["recipes"]["rows"]}
    assert rat_rows["rat_ensemble_concat"]["out_dim"] == 5 * rat.marble["out_dim"]
    assert rat_rows["rat_ensemble_concat"]["n_models"] == 5
    mc_rows = {r["method"]: r for r in measured["macaque"]["rows"]}
    assert len(mc_rows["macaque_ensemble_concat"]["per_seed"]) == 3 and "macaque_tuned" in mc_rows


def test_every_recipe_source_names_where_it_comes_from():
    for recipe in recipes.RECIPES.values():
        assert recipe.source and "SOURCE_" not in recipe.source, recipe.name
