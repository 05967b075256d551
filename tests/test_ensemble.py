"""MARBLEEnsemble: Procrustes maths on known rotations, seeding, the benchmark's equivalence, persistence, errors."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.stats import special_ortho_group

from marble_widgets.data.containers import flow_field_from_arrays
from marble_widgets.ensemble import (MANIFEST, MARBLEEnsemble, align_members, choose_reference, principal_axes,
                                     procrustes_fit)
from marble_widgets.estimator import MARBLE

FAST = dict(k=10, epochs=3, verbose=False, hidden_channels=(16,), out_dim=3)


@pytest.fixture(scope="module")
def flow() -> xr.Dataset:
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, (120, 2)) for _ in range(2)]
    vs = [(c + 1) * np.c_[-x[:, 1], x[:, 0]] for c, x in enumerate(xs)]
    ff = flow_field_from_arrays(xs, vs, conditions=["c0", "c1"])
    angle = np.arctan2(ff["x"].values[:, 1], ff["x"].values[:, 0])
    return ff.assign(angle=("sample", angle), side=("sample", np.where(ff["x"].values[:, 0] > 0, "right", "left")))


@pytest.fixture(scope="module")
def fitted(flow) -> MARBLEEnsemble:
    return MARBLEEnsemble(FAST, n_members=3, seed=2).fit(flow)


# ------------------------------------------------------------------------------------ maths
def test_procrustes_fit_recovers_a_known_rotation_and_translation_and_skips_nan_rows():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 4))
    rot = special_ortho_group.rvs(4, random_state=2)
    shift = np.array([1.0, -2.0, 0.5, 3.0])
    y = x @ rot + shift
    x_nan = x.copy()
    x_nan[[3, 7]] = np.nan
    r, t = procrustes_fit(x_nan, y)
    np.testing.assert_allclose(r, rot, atol=1e-10)
    np.testing.assert_allclose(t, shift, atol=1e-10)


def test_procrustes_fit_needs_two_shared_rows():
    x = np.full((5, 2), np.nan)
    x[0] = 1.0
    with pytest.raises(ValueError, match="at least 2 matched rows without NaN"):
        procrustes_fit(x, np.ones((5, 2)))


def test_reference_is_the_member_the_others_fit_best():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((200, 3))
    noise = (0.3, 0.01, 0.3, 1.0)  # member 1 is the clean one: every other fits it best
    points = [base @ special_ortho_group.rvs(3, random_state=i) + s * rng.standard_normal(base.shape)
              for i, s in enumerate(noise)]
    assert choose_reference(points) == 1


def test_aligned_rotated_copies_coincide_exactly():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((100, 3))
    points = [base @ special_ortho_group.rvs(3, random_state=i) + i for i in range(4)]
    ref, fits = align_members(points, n_iter=2)
    aligned = [p @ r + t for p, (r, t) in zip(points, fits)]
    for a in aligned:
        np.testing.assert_allclose(a, aligned[0], atol=1e-9)
    np.testing.assert_allclose(aligned[0], points[ref], atol=1e-9)  # copies: the mean is the reference itself


def test_principal_axes_find_known_axes_with_a_fixed_sign():
    rng = np.random.default_rng(5)
    rot = special_ortho_group.rvs(4, random_state=6)
    z = (rng.standard_normal((2000, 4)) * [5.0, 2.0, 0.5, 0.1]) @ rot + 7.0
    mean, axes = principal_axes(z, 2)
    np.testing.assert_allclose(mean, z.mean(axis=0))
    np.testing.assert_allclose(np.abs(axes.T @ rot.T), [[1, 0, 0, 0], [0, 1, 0, 0]], atol=0.02)  # rows 0, 1 of rot
    assert (axes[np.abs(axes).argmax(axis=0), [0, 1]] > 0).all()
    _, flipped = principal_axes(-z, 2)  # the data mirrored: same axes, same signs
    np.testing.assert_allclose(flipped, axes, atol=1e-10)
    with pytest.raises(ValueError, match="n_components must be between 1 and the embedding's 4 dimensions; got 5"):
        principal_axes(z, 5)


# ------------------------------------------------------------------------------------ estimator
def test_members_get_disjoint_seeds_and_the_output_is_their_aligned_mean(flow, fitted):
    assert fitted.member_seeds == [6, 7, 8]
    assert [m.get_params()["seed"] for m in fitted.members_] == [6, 7, 8]
    assert MARBLEEnsemble(FAST, n_members=3, seed=3).member_seeds == [9, 10, 11]
    z = fitted.transform(flow)
    assert z.dims == ("sample", "latent") and z.shape == (240, 3)
    assert list(z["condition"].values[:1]) == ["c0"]
    parts = [m.transform(flow).values for m in fitted.members_]
    ref = parts[fitted.reference_]
    _, fits = align_members(parts, n_iter=3)
    np.testing.assert_allclose(z.values, np.mean([p @ r + t for p, (r, t) in zip(parts, fits)], axis=0), atol=1e-10)
    for rot in fitted.rotations_:
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-10)
    assert not np.allclose(z.values, ref)  # an average, not the reference alone


def test_benchmark_combination_is_the_estimators(flow, fitted):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import seed_stability

    members = [(m.transform(flow).values,) * 2 for m in fitted.members_]
    z_tr, _ = seed_stability.combine_members(members, flow, {})
    np.testing.assert_allclose(z_tr, fitted.transform(flow).values, atol=1e-10)


def test_projection_keeps_the_leading_principal_axes_of_the_training_mean(flow, fitted):
    from sklearn.decomposition import PCA

    ens = MARBLEEnsemble(FAST, n_members=3, seed=2, n_components=2).fit(flow)
    z = ens.transform(flow)
    full = fitted.transform(flow).values  # same members and rotations, no projection
    assert z.shape == (240, 2) and list(z["latent"].values) == [0, 1]
    want = PCA(2).fit_transform(full)  # sklearn, independently: equal up to each axis's sign
    signs = np.sign(np.sum(want * z.values, axis=0))
    np.testing.assert_allclose(z.values, want * signs, atol=1e-8)
    np.testing.assert_allclose(z.values.mean(axis=0), 0.0, atol=1e-10)
    assert np.var(z.values[:, 0]) >= np.var(z.values[:, 1])
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import seed_stability

    members = [(m.transform(flow).values,) * 2 for m in ens.members_]
    z_tr, _ = seed_stability.combine_members(members, flow, {}, n_components=2)
    np.testing.assert_allclose(z_tr, z.values, atol=1e-10)


def test_concat_puts_the_aligned_members_side_by_side(flow, fitted):
    ens = MARBLEEnsemble(FAST, n_members=3, seed=2, combine="concat").fit(flow)
    z = ens.transform(flow)
    parts = [m.transform(flow).values for m in fitted.members_]  # same seeds: same members, same rotations
    rotated = [p @ r for p, r in zip(parts, fitted.rotations_)]
    assert z.shape == (240, 9) and list(z["latent"].values) == list(range(9))
    np.testing.assert_allclose(z.values, np.hstack(rotated), atol=1e-10)
    mean = (z.values.reshape(240, 3, 3) + np.reshape(fitted.translations_, (1, 3, 3))).mean(axis=1)
    np.testing.assert_allclose(mean, fitted.transform(flow).values, atol=1e-10)
    np.testing.assert_allclose(z.values @ z.values.T, sum(p @ p.T for p in parts), atol=1e-8)  # dot products kept
    assert list(z["condition"].values[:1]) == ["c0"]
    members = [(p,) * 2 for p in parts]
    z_tr, _ = seed_stability_module().combine_members(members, flow, {}, combine="concat")
    np.testing.assert_allclose(z_tr, z.values, atol=1e-10)
    unit = [a / np.linalg.norm(a, axis=1, keepdims=True) for a in rotated]  # why concat: mean cosine similarity
    both = np.hstack(unit)
    cos = both[:5] @ both[5:10].T / 3
    np.testing.assert_allclose(cos, np.mean([u[:5] @ u[5:10].T for u in unit], axis=0), atol=1e-10)


def seed_stability_module():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import seed_stability

    return seed_stability


def test_projected_ensemble_round_trips(tmp_path, flow):
    ens = MARBLEEnsemble(FAST, n_members=2, seed=1, n_components=2).fit(flow)
    back = MARBLEEnsemble.load(ens.save(tmp_path / "ens"))
    assert back.n_components == 2
    np.testing.assert_allclose(back.transform(flow).values, ens.transform(flow).values, atol=1e-6)


def test_same_seed_same_ensemble_other_seed_other_members(flow, fitted):
    again = MARBLEEnsemble(FAST, n_members=3, seed=2).fit(flow)
    np.testing.assert_array_equal(again.transform(flow).values, fitted.transform(flow).values)
    other = MARBLEEnsemble(MARBLE(**FAST), n_members=3, seed=0).fit(flow)
    assert not np.allclose(other.transform(flow).values, fitted.transform(flow).values)


def test_alignment_on_label_bins_with_a_split(flow):
    ens = MARBLEEnsemble(FAST, n_members=2, seed=0, align_on="angle", by="side", bins=10).fit(flow)
    rows = MARBLEEnsemble(FAST, n_members=2, seed=0).fit(flow)
    assert ens.transform(flow).shape == (240, 3)
    assert ens.reference_ == rows.reference_  # same members; the reference's rotation stays near the identity
    other = 1 - ens.reference_
    assert not np.allclose(ens.rotations_[other], rows.rotations_[other], atol=1e-3)  # matched on bin means


def test_save_load_round_trip(tmp_path, flow, fitted):
    out = fitted.save(tmp_path / "ens")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "member_0.pt", "member_1.pt", "member_2.pt"]
    back = MARBLEEnsemble.load(out)
    np.testing.assert_allclose(back.transform(flow).values, fitted.transform(flow).values, atol=1e-6)
    assert back.member_seeds == fitted.member_seeds and back.reference_ == fitted.reference_


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs, message", [
    ({"n_members": 1}, r"n_members must be an integer >= 2 .*got 1"),
    ({"seed": -1}, r"seed must be a non-negative integer; got -1"),
    ({"by": "side"}, r"by= splits the label bins of align_on"),
    ({"align_on": "speed"}, r"'speed' is not one \(1-D sample variables: \["),
    ({"n_components": 0}, r"n_components must be None \(keep every dimension\) or an integer >= 1, e.g. 3; got 0"),
    ({"n_components": 4}, r"n_components must be between 1 and the embedding's 3 dimensions; got 4"),
    ({"combine": "sum"}, r"combine must be one of \('mean', 'concat'\) .*got 'sum'"),
])
def test_bad_parameters_are_named(flow, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MARBLEEnsemble(FAST, **kwargs).fit(flow)


def test_bad_base_and_unknown_parameters():
    with pytest.raises(TypeError, match="base must be a MARBLE instance or a dict of MARBLE parameters"):
        MARBLEEnsemble("rat_recommended").fit(xr.Dataset())
    with pytest.raises(ValueError, match="has no parameter 'n_models'"):
        MARBLEEnsemble().set_params(n_models=3)


def test_transform_before_fit_and_loading_a_wrong_directory(tmp_path, flow):
    with pytest.raises(ValueError, match="not fitted yet"):
        MARBLEEnsemble(FAST).transform(flow)
    with pytest.raises(ValueError, match="holds no ensemble.json"):
        MARBLEEnsemble.load(tmp_path)
    (tmp_path / MANIFEST).write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a readable MARBLEEnsemble manifest: format is 'something else'"):
        MARBLEEnsemble.load(tmp_path)


def test_a_missing_member_file_is_a_model_file_error(tmp_path, fitted):
    from marble_widgets.model_file import ModelFileError

    out = fitted.save(tmp_path / "ens")
    (out / "member_1.pt").unlink()
    with pytest.raises(ModelFileError, match="member_1.pt"):
        MARBLEEnsemble.load(out)
