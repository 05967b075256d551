"""Cross-validated decoding without leakage between neighbouring bins (docs/spec.md §13.4)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from marble_widgets.analysis import choose_k, decode, fold_assignment, train_test_decode


def _emb(values: np.ndarray, n_trials: int, **coords) -> xr.DataArray:
    n = len(values)
    per = n // n_trials
    c = {"condition": ("sample", np.repeat("c", n)), "trial": ("sample", np.repeat(np.arange(n_trials), per)),
         "time": ("sample", np.tile(np.arange(per) * 0.02, n_trials)), "latent": np.arange(values.shape[1])}
    c.update({k: ("sample", v) for k, v in coords.items()})
    return xr.DataArray(values, dims=("sample", "latent"), coords=c, name="embedding")


@pytest.fixture
def linear_toy(rng):
    z = rng.normal(size=(600, 4))
    w = np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 1.0], [3.0, 0.2]])
    y = z @ w + 0.01 * rng.normal(size=(600, 2))
    return _emb(z, 20), xr.DataArray(y, dims=("sample", "axis"), coords={"axis": ["x", "y"]})


def test_linear_map_decodes_with_r2_near_one(linear_toy):
    emb, y = linear_toy
    ds = decode(emb, y, kind="linear", cv=5)
    assert ds.sizes["fold"] == 5 and ds.attrs["task"] == "regression"
    assert (ds.r2 > 0.99).all() and ds.r2_pooled > 0.99
    assert ds.prediction.dims == ("sample", "axis") and list(ds.axis.values) == ["x", "y"]
    np.testing.assert_allclose(ds.prediction, y, atol=0.06)
    err = np.linalg.norm(ds.prediction.values - y.values, axis=1)
    assert float(ds.median_abs_error_pooled) == pytest.approx(np.median(err))
    assert (ds.k == -1).all()


def test_random_target_has_no_skill(rng, linear_toy):
    emb, _ = linear_toy
    ds = decode(emb, rng.normal(size=600), kind="linear")
    assert ds.r2_pooled < 0.02 and (ds.r2 < 0.05).all()
    knn = decode(emb, rng.normal(size=600), kind="knn", k=20, metric="euclidean")
    assert knn.r2_pooled < 0.02


def test_separable_labels_give_accuracy_one(rng):
    z = rng.normal(size=(400, 3))
    z[:, 0] += np.where(z[:, 0] > 0, 2.0, -2.0)  # margin of 4 around the plane z0 = 0
    label = np.where(z[:, 0] > 0, "left", "right")
    emb = _emb(z, 20, side=label)
    for kind in ("linear", "knn"):
        ds = decode(emb, "side", kind=kind, k=5, metric="euclidean")
        assert ds.attrs["task"] == "classification"
        assert (ds.accuracy == 1.0).all() and ds.accuracy_pooled == 1.0
        np.testing.assert_array_equal(ds.prediction, label)


def test_trial_folds_never_share_a_trial(linear_toy):
    emb, y = linear_toy
    ds = decode(emb, y, cv=4, seed=3)
    pairs = {(int(t), int(f)) for t, f in zip(ds.trial.values, ds.test_fold.values)}
    assert len(pairs) == 20  # each of the 20 trials sits in exactly one fold
    assert set(ds.test_fold.values) == {0, 1, 2, 3}
    np.testing.assert_array_equal(fold_assignment(emb, 4, seed=3), ds.test_fold)


def test_contiguous_folds_are_contiguous_blocks(linear_toy):
    emb, _ = linear_toy
    shuffled = emb.isel(sample=np.random.default_rng(1).permutation(600))  # order by (trial, time)
    fold = fold_assignment(shuffled, cv=5, groups=None, contiguous=True)
    order = np.lexsort((shuffled.time.values, shuffled.trial.values))
    seq = fold.values[order]
    assert np.all(np.diff(seq) >= 0) and np.bincount(seq).tolist() == [120] * 5
    by_trial = fold_assignment(emb, cv=3, groups="trial", contiguous=True).values
    assert np.all(np.diff(by_trial) >= 0)
    assert len({(t, f) for t, f in zip(emb.trial.values, by_trial)}) == 20


def test_choose_k_prefers_averaging_under_noise(rng):
    x = np.sort(rng.uniform(0, 6, 600))[:, None]
    noisy = np.sin(x[:, 0]) + 1.0 * rng.normal(size=600)
    clean = np.sin(x[:, 0])
    shuffled = rng.permutation(600)
    assert choose_k(x[shuffled], noisy[shuffled], metric="euclidean") >= 20
    assert choose_k(x[shuffled], clean[shuffled], metric="euclidean") <= 5
    emb = _emb(x[shuffled], 20)
    ds = decode(emb, noisy[shuffled], kind="knn", metric="euclidean", groups=None, seed=0)
    assert (ds.k >= 20).all()


def test_train_test_decode_fixed_split(rng):
    theta = rng.uniform(0, 2 * np.pi, 1000)
    pos = theta / (2 * np.pi)
    z = np.c_[np.cos(theta), np.sin(theta), 0.5 * np.ones(1000)] + 0.01 * rng.normal(size=(1000, 3))
    emb = _emb(z, 1, position=pos)
    ds = train_test_decode(emb, "position", kind="knn", k=10)
    assert ds.sizes["sample"] == 200 and ds.sizes["fold"] == 1
    np.testing.assert_array_equal(ds.time.values, emb.time.values[800:])
    assert float(ds.median_abs_error[0]) < 0.01
    ds2 = train_test_decode(emb.isel(sample=slice(0, 800)), "position", emb.isel(sample=slice(800, None)), k=10)
    np.testing.assert_allclose(ds2.prediction, ds.prediction)
    assert ds2.attrs["n_train"] == 800 and ds2.attrs["n_test"] == 200


def test_decode_errors(linear_toy):
    emb, y = linear_toy
    with pytest.raises(ValueError, match="kind must be one of"):
        decode(emb, y, kind="svm")
    with pytest.raises(ValueError, match="target='speed' is not a coordinate"):
        decode(emb, "speed")
    with pytest.raises(ValueError, match="need at least 30 groups"):
        decode(emb, y, cv=30)
    with pytest.raises(ValueError, match="one value per sample"):
        decode(emb, y.values[:10])
    with pytest.raises(ValueError, match="k=700 neighbours"):
        decode(emb, y, kind="knn", k=700)


def test_choose_k_by_median_error_matches_a_hand_computed_choice(rng):
    from sklearn.model_selection import KFold
    from sklearn.neighbors import KNeighborsRegressor

    x = np.sort(rng.uniform(0, 1, 300))[:, None]
    y = np.sin(6 * x[:, 0]) + rng.standard_t(1.5, 300) * 0.2  # heavy tails: the two criteria may differ
    cands = (1, 3, 10, 30)
    errs = {k: np.mean([np.median(np.abs(KNeighborsRegressor(k).fit(x[tr], y[tr]).predict(x[te]) - y[te]))
                        for tr, te in KFold(5).split(x)]) for k in cands}
    want = min(cands, key=lambda k: (errs[k], k))
    assert choose_k(x, y, metric="euclidean", candidates=cands, criterion="median_abs_error") == want
    with pytest.raises(ValueError, match="criterion must be one of"):
        choose_k(x, y, criterion="mae")


def test_train_test_decode_chooses_k_with_the_requested_criterion(rng):
    x = np.sort(rng.uniform(0, 1, 300))[:, None]
    y = np.sin(6 * x[:, 0]) + rng.standard_t(1.5, 300) * 0.2
    emb = xr.DataArray(x, dims=("sample", "latent"), coords={"time": ("sample", np.arange(300.0))})
    tr, te = emb.isel(sample=slice(0, 240)), emb.isel(sample=slice(240, None))
    for criterion in ("r2", "median_abs_error"):
        res = train_test_decode(tr, y[:240], te, y[240:], kind="knn", metric="euclidean", k_criterion=criterion)
        want = choose_k(x[:240], y[:240], metric="euclidean", criterion=criterion)
        assert int(res["k"].values[0]) == want


def _trial_embedding(seed: int = 0, n_trials: int = 12, per_trial: int = 15):
    """Embedding with a linear 2-D target plus noise, on trials (the macaque layout)."""
    rng = np.random.default_rng(seed)
    n = n_trials * per_trial
    z = rng.normal(size=(n, 4)) * np.array([1.0, 10.0, 0.1, 3.0])
    v = z[:, :2] @ np.array([[1.0, -0.5], [0.2, 0.3]]) + 0.5 * rng.normal(size=(n, 2))
    coords = {"trial": ("sample", np.repeat(np.arange(n_trials), per_trial)),
              "time": ("sample", np.tile(np.arange(per_trial) * 0.02, n_trials))}
    emb = xr.DataArray(z, dims=("sample", "latent"), coords=coords)
    return emb, xr.DataArray(v, dims=("sample", "axis"), coords={**coords, "axis": ["x", "y"]})


def test_ridge_cv_equals_a_standardised_ridgecv_with_trial_folds():
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from marble_widgets.analysis.decoding import RIDGE_ALPHAS, train_test_decode

    emb, v = _trial_embedding()
    train, test = emb.trial.values < 9, emb.trial.values >= 9
    result = train_test_decode(emb[train], v[train], emb[test], v[test], kind="ridge_cv")
    splits = list(GroupKFold(5).split(emb.values[train], groups=emb.trial.values[train]))
    reference = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 8), cv=splits))
    expected = reference.fit(emb.values[train], v.values[train]).predict(emb.values[test])
    np.testing.assert_allclose(result["prediction"].values, expected, rtol=1e-10, atol=1e-12)
    assert RIDGE_ALPHAS[0] == 1e-3 and RIDGE_ALPHAS[-1] == 1e4 and len(RIDGE_ALPHAS) == 8
    assert result["k"].values.tolist() == [-1]


def test_ridge_cv_in_decode_equals_a_fit_on_the_other_folds():
    from marble_widgets.analysis.decoding import decode, train_test_decode

    emb, v = _trial_embedding(seed=1)
    result = decode(emb, v, kind="ridge_cv", cv=3, groups="trial")
    assert result.sizes["fold"] == 3 and float(result["r2_pooled"]) > 0.9
    for f in range(3):
        held = result["test_fold"].values == f
        alone = train_test_decode(emb[~held], v[~held], emb[held], v[held], kind="ridge_cv")
        np.testing.assert_allclose(result["prediction"].values[held], alone["prediction"].values, rtol=1e-9)


def _track_animal(seed: int, rotation: np.ndarray | None = None, n: int = 600) -> xr.DataArray:
    """A 3-D embedding that encodes track position (0..1) on a curve, optionally rotated."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 1, n)
    z = np.c_[np.cos(3 * pos), np.sin(3 * pos), pos] + 0.02 * rng.normal(size=(n, 3))
    z = z if rotation is None else z @ rotation
    return xr.DataArray(z, dims=("sample", "latent"), coords={"position": ("sample", pos),
                                                              "time": ("sample", np.arange(n) * 0.1)})


def test_cross_decode_undoes_a_rotation_between_animals():
    from scipy.stats import special_ortho_group

    from marble_widgets.analysis import cross_decode, train_test_decode

    rot = special_ortho_group.rvs(3, random_state=1)
    a, b = _track_animal(0), _track_animal(1, rot)
    aligned = cross_decode(a, b, "position", align="procrustes", kind="knn", k=5, metric="euclidean")
    plain = cross_decode(a, b, "position", align="none", kind="knn", k=5, metric="euclidean")
    same = train_test_decode(a, "position", b, "position", kind="knn", k=5, metric="euclidean")
    assert float(aligned["median_abs_error"].item()) < 0.02  # 2 % of the track
    assert float(plain["median_abs_error"].item()) > 5 * float(aligned["median_abs_error"].item())
    np.testing.assert_array_equal(plain["prediction"].values, same["prediction"].values)
    assert aligned.attrs["align"] == "procrustes"


def test_cross_decode_refuses_unknown_alignment_and_missing_target():
    from marble_widgets.analysis import cross_decode

    a = _track_animal(0)
    with pytest.raises(ValueError, match=r"align must be one of \('procrustes', 'ot', 'none'\); got 'cca'"):
        cross_decode(a, a, align="cca")
    with pytest.raises(ValueError, match="test_emb has no sample coordinate 'position'"):
        cross_decode(a, a.drop_vars("position"))
