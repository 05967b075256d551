"""Flow fields from recordings: FlowFieldBuilder, flow_field, combine_flow_fields."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.ndimage import gaussian_filter1d
from sklearn.base import clone
from sklearn.decomposition import PCA

from marble_widgets.data import flow
from marble_widgets.data.errors import MarbleDataError
from marble_widgets.data.flow import FlowFieldBuilder, combine_flow_fields, flow_field


def aligned_rec(n_trial: int = 4, n_time: int = 30, n_unit: int = 6, bs: float = 0.02, seed: int = 0) -> xr.Dataset:
    """A trial-aligned recording: counts (trial, time, unit), velocity (trial, time, axis), per-trial vars."""
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {
            "spike_counts": (("trial", "time", "unit"), rng.poisson(1.0, (n_trial, n_time, n_unit)).astype(float)),
            "hand_velocity": (("trial", "time", "axis"), rng.normal(size=(n_trial, n_time, 2))),
            "reach_angle": ("trial", np.linspace(0, np.pi, n_trial)),
            "target": ("trial", np.array(["left", "right"])[np.arange(n_trial) % 2]),
        },
        coords={"trial": np.arange(n_trial) + 100, "time": -0.2 + (np.arange(n_time) + 0.5) * bs,
                "unit": np.arange(n_unit), "axis": ["x", "y"]},
        attrs={"bin_size": bs, "kind": "trials", "source": "toy_maze"},
    )


def continuous_rec(n_time: int = 1000, n_unit: int = 8, bs: float = 0.025, seed: int = 1) -> xr.Dataset:
    """A continuous recording with low-dimensional rate structure, position and direction."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_time) * bs
    latent = np.c_[np.sin(2 * np.pi * t / 4), np.cos(2 * np.pi * t / 7)]
    lam = np.exp(0.5 + latent @ rng.normal(size=(2, n_unit))) * 0.3
    return xr.Dataset(
        {
            "spike_counts": (("time", "unit"), rng.poisson(lam).astype(np.float32)),
            "position": ("time", 0.8 + 0.8 * latent[:, 0]),
            "direction": ("time", np.where(np.cos(2 * np.pi * t / 4) > 0, "right", "left")),
        },
        coords={"time": 100.0 + t + bs / 2, "unit": np.arange(n_unit)},
        attrs={"bin_size": bs, "kind": "continuous", "source": "/data/buddy.npz"},
    )


# ------------------------------------------------------------------------------ numbers
def test_linear_trajectory_gives_analytic_positions_and_vectors():
    bs, n_time = 0.02, 25
    t = np.arange(n_time)
    a, b = np.array([5.0, 1.0, 3.0]), np.array([2.0, -1.0, 0.5])
    offsets = np.array([0.0, 7.0])
    r = offsets[:, None, None] + a + t[None, :, None] * b  # Hz, exactly linear in the bin index
    rec = xr.Dataset({"rates": (("trial", "time", "unit"), r)}, coords={"time": t * bs, "unit": [0, 1, 2]},
                     attrs={"bin_size": bs})
    rec["rates"].attrs["units"] = "Hz"
    ff = flow_field(rec, n_components=None, smooth=None, variable="rates")
    assert ff.sizes == {"sample": 2 * (n_time - 1), "dim": 3}
    np.testing.assert_allclose(ff["x"].values, r[:, :-1].reshape(-1, 3), atol=1e-12)
    np.testing.assert_allclose(ff["v"].values, np.tile(b, (2 * (n_time - 1), 1)), atol=1e-12)
    np.testing.assert_allclose(ff["time"].values, np.tile(t[:-1] * bs, 2))
    # PCA of a single straight line: PC1 score = +-|b| (t - mean t) (per trial offset along b removed
    # only through the shared mean, so use one trial)
    one = rec.isel(trial=[0])
    pc = flow_field(one, n_components=1, smooth=None, variable="rates")
    sign = np.sign(pc["v"].values[0, 0])
    nb = np.linalg.norm(b)
    np.testing.assert_allclose(sign * pc["x"].values[:, 0], nb * (t[:-1] - t.mean()), atol=1e-9)
    np.testing.assert_allclose(sign * pc["v"].values[:, 0], nb, atol=1e-9)
    central = flow_field(one, n_components=None, smooth=None, variable="rates", difference="central")
    np.testing.assert_allclose(central["x"].values, r[0, 1:-1], atol=1e-12)
    np.testing.assert_allclose(central["v"].values, np.tile(b, (n_time - 2, 1)), atol=1e-12)


def test_pca_fitted_on_train_equals_independent_sklearn_on_test():
    rec = continuous_rec()
    n_train = int(0.8 * rec.sizes["time"])
    train, test = rec.isel(time=slice(0, n_train)), rec.isel(time=slice(n_train, None))
    builder = FlowFieldBuilder(n_components=3, smooth=0.25).fit(train)
    ff = builder.transform(test)

    def rates(part):
        return gaussian_filter1d(part["spike_counts"].values.astype(float), 10.0, axis=0, mode="constant") / 0.025

    ref = PCA(n_components=3).fit(rates(train))
    expected = ref.transform(rates(test))
    np.testing.assert_allclose(ff["x"].values, expected[:-1], atol=1e-9)
    np.testing.assert_allclose(ff["v"].values, np.diff(expected, axis=0), atol=1e-9)
    np.testing.assert_allclose(builder.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(ff["position"].values, test["position"].values[:-1])
    np.testing.assert_array_equal(ff["direction"].values, test["direction"].values[:-1])
    np.testing.assert_allclose(ff["time"].values, test["time"].values[:-1])
    assert (ff["condition"].values == "buddy").all() and (ff["trial"].values == 0).all()
    assert list(ff["dim"].values) == ["PC1", "PC2", "PC3"]
    assert ff.attrs["n_components"] == 3 and ff.attrs["smooth"] == 0.25 and ff.attrs["difference"] == "forward"


def test_zscore_statistics_come_from_the_fit_part():
    rec = continuous_rec()
    train, test = rec.isel(time=slice(0, 800)), rec.isel(time=slice(800, None))
    b = FlowFieldBuilder(n_components=None, smooth=0.1, zscore=True).fit(train)
    r_train = gaussian_filter1d(train["spike_counts"].values.astype(float), 4.0, axis=0, mode="constant") / 0.025
    np.testing.assert_allclose(b.mean_, r_train.mean(0))
    np.testing.assert_allclose(b.scale_, r_train.std(0))
    r_test = gaussian_filter1d(test["spike_counts"].values.astype(float), 4.0, axis=0, mode="constant") / 0.025
    np.testing.assert_allclose(b.transform(test)["x"].values, ((r_test - b.mean_) / b.scale_)[:-1], atol=1e-10)


def test_no_vector_spans_two_trials():
    rec = aligned_rec(n_trial=5)
    offsets = np.arange(5) * 10.0
    levels = np.broadcast_to(offsets[:, None, None], (5, 30, 6)).copy()
    const = rec.assign(spike_counts=(("trial", "time", "unit"), levels))
    ff = flow_field(const, n_components=None, smooth=None)
    assert ff.sizes["sample"] == 5 * 29
    np.testing.assert_array_equal(ff["v"].values, 0.0)  # any cross-trial difference would be +-10/bs
    np.testing.assert_allclose(ff["x"].values[:, 0], np.repeat(offsets / 0.02, 29))
    np.testing.assert_array_equal(ff["trial"].values, np.repeat(rec["trial"].values, 29))
    # continuous recording with a trials table and different levels inside and between trials
    n = 300
    counts = np.full((n, 2), 50.0)
    edges = [(0, 60), (60, 150), (200, 300)]
    for k, (i, j) in enumerate(edges):
        counts[i:j] = k + 1.0
    time = np.arange(n) * 0.01 + 0.005
    cont = xr.Dataset({"spike_counts": (("time", "unit"), counts)}, coords={"time": time},
                      attrs={"bin_size": 0.01})
    cont = cont.assign(start_time=("trial", [time[i] - 0.005 for i, _ in edges]),
                       stop_time=("trial", [time[j - 1] + 0.005 for _, j in edges])).assign_coords(trial=[1, 2, 3])
    ffc = flow_field(cont, n_components=None, smooth=None)
    assert ffc.sizes["sample"] == 59 + 89 + 99
    np.testing.assert_array_equal(ffc["v"].values, 0.0)
    np.testing.assert_array_equal(np.unique(ffc["trial"].values), [1, 2, 3])


def test_continuous_splits_at_time_gaps_and_nan_rows():
    rec = continuous_rec(n_time=100)
    time = rec["time"].values.copy()
    time[40:] += 1.0  # gap after bin 39
    counts = rec["spike_counts"].values.astype(float)
    counts[70] = np.nan  # NaN row: a second cut
    rec = rec.assign(spike_counts=(("time", "unit"), counts)).assign_coords(time=time)
    ff = flow_field(rec, n_components=2, smooth=0.05)
    np.testing.assert_array_equal(np.bincount(ff["trial"].values), [39, 29, 28])
    dt = np.diff(ff["time"].values)  # jumps only where a segment starts: over the gap and the NaN row
    np.testing.assert_allclose(dt[dt > 0.03], [1.0 + 2 * 0.025, 3 * 0.025])


def test_behaviour_and_per_trial_variables_are_carried():
    rec = aligned_rec()
    rec["spike_counts_heldout"] = (("trial", "time", "unit_heldout"), np.ones((4, 30, 2)))
    ff = flow_field(rec, n_components=3, smooth=0.05, condition="target")
    assert "spike_counts_heldout" not in ff and "unit_heldout" not in ff.dims
    pos = np.searchsorted(rec["trial"].values, ff["trial"].values)
    row = np.round((ff["time"].values - rec["time"].values[0]) / 0.02).astype(int)
    np.testing.assert_allclose(ff["hand_velocity"].values, rec["hand_velocity"].values[pos, row])
    assert ff["hand_velocity"].dims == ("sample", "axis") and list(ff["axis"].values) == ["x", "y"]
    np.testing.assert_allclose(ff["reach_angle"].values, rec["reach_angle"].values[pos])
    np.testing.assert_array_equal(ff["condition"].values, rec["target"].values[pos])
    assert "spike_counts" not in ff and ff.attrs["condition_by"] == "target"
    per_time = flow_field(continuous_rec(n_time=200), n_components=2, condition="direction")
    assert set(per_time["condition"].values) == {"left", "right"}
    np.testing.assert_array_equal(per_time["condition"].values, per_time["direction"].values)
    with pytest.raises(MarbleDataError, match=r"condition='colour'.*\['reach_angle', 'target'\]"):
        flow_field(rec, n_components=2, condition="colour")
    single = flow_field(rec.drop_attrs(), n_components=2)
    assert set(single["condition"].values) == {"all"}


# ------------------------------------------------------------------------------ bad input
def test_non_finite_counts_raise():
    rec = aligned_rec()
    bad = rec["spike_counts"].values.copy()
    bad[1, 3, 2] = np.inf
    with pytest.raises(MarbleDataError, match=r"spike_counts.*inf.*\(1, 3, 2\)"):
        flow_field(rec.assign(spike_counts=(rec["spike_counts"].dims, bad)), n_components=2)
    bad[1, 3, 2] = np.nan
    with pytest.raises(MarbleDataError, match="isolated NaN"):
        flow_field(rec.assign(spike_counts=(rec["spike_counts"].dims, bad)), n_components=2)


def test_short_and_empty_trials_are_skipped_with_warning():
    rec = aligned_rec(n_trial=4)
    counts = rec["spike_counts"].values.copy()
    counts[1] = np.nan  # empty trial (no finite bins)
    counts[2, 1:] = np.nan  # a trial with a single bin
    rec = rec.assign(spike_counts=(rec["spike_counts"].dims, counts))
    with pytest.warns(UserWarning, match=r"skipped 2 .*ids \[101, 102\]"):
        ff = flow_field(rec, n_components=2, smooth=0.04)
    np.testing.assert_array_equal(np.unique(ff["trial"].values), [100, 103])
    counts[[0, 3], 1:] = np.nan
    with pytest.raises(MarbleDataError, match="shorter than 2 bins"):
        flow_field(rec.assign(spike_counts=(rec["spike_counts"].dims, counts)), n_components=2)
    with pytest.raises(MarbleDataError, match="shorter than 3 bins"):
        flow_field(aligned_rec(n_time=2), n_components=2, difference="central")


def test_parameter_and_shape_errors():
    rec = aligned_rec(n_unit=6)
    with pytest.raises(MarbleDataError, match=r"n_components=7 exceeds the 6 units"):
        flow_field(rec, n_components=7)
    with pytest.raises(TypeError, match="n_component"):
        FlowFieldBuilder(n_component=3)
    with pytest.raises(ValueError, match="difference must be"):
        flow_field(rec, difference="backward")
    with pytest.raises(ValueError, match="n_components must be"):
        flow_field(rec, n_components=0)
    with pytest.raises(TypeError, match="xarray.Dataset"):
        flow_field(np.zeros((10, 3)))
    b = FlowFieldBuilder(n_components=2).fit(rec)
    with pytest.raises(MarbleDataError, match="5 units but the builder was fitted on 6"):
        b.transform(rec.isel(unit=slice(0, 5)))
    with pytest.raises(MarbleDataError, match=r"positions \(4, 2\) and vectors \(5, 2\)"):
        flow.flow_field_from_arrays(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(MarbleDataError, match="dims"):
        flow_field(rec.assign(spike_counts=(("trial", "time", "unit"), rec["spike_counts"].values)).isel(unit=0))


def test_builder_follows_sklearn_conventions():
    b = FlowFieldBuilder(n_components=2, smooth=0.1, zscore=True, seed=3)
    assert clone(b).get_params() == b.get_params()
    rec = aligned_rec()
    ff1 = b.fit_transform(rec)
    xr.testing.assert_identical(ff1, b.transform(rec))
    assert hasattr(b, "pca_") and hasattr(b, "mean_") and b.explained_variance_ratio_.shape == (2,)
    assert not hasattr(FlowFieldBuilder(), "pca_")


# ------------------------------------------------------------------------------ combine
def test_combine_flow_fields_adds_animal_coord_and_reindexes():
    ff1 = flow_field(aligned_rec(seed=0), n_components=3, condition="target")
    ff2 = flow_field(aligned_rec(seed=1, n_trial=2), n_components=3, condition="target")
    both = combine_flow_fields({"buddy": ff1, "rat2": ff2})
    n1, n2 = ff1.sizes["sample"], ff2.sizes["sample"]
    np.testing.assert_array_equal(both["sample"].values, np.arange(n1 + n2))
    np.testing.assert_array_equal(both["animal"].values, ["buddy"] * n1 + ["rat2"] * n2)
    np.testing.assert_allclose(both["x"].values, np.r_[ff1["x"].values, ff2["x"].values])
    assert set(both["condition"].values) == {"buddy/left", "buddy/right", "rat2/left", "rat2/right"}
    np.testing.assert_array_equal(both["base_condition"].values[:n1], ff1["condition"].values)
    np.testing.assert_allclose(both["hand_velocity"].values[n1:], ff2["hand_velocity"].values)
    keep = combine_flow_fields({"a": ff1, "b": ff2}, dim="session", relabel_conditions=False)
    assert set(keep["condition"].values) == {"left", "right"} and "session" in keep.coords
    with pytest.raises(MarbleDataError, match="share their 'dim' coordinate"):
        combine_flow_fields({"a": ff1, "b": flow_field(aligned_rec(), n_components=2)})
    with pytest.raises(MarbleDataError, match="non-empty mapping"):
        combine_flow_fields({})


def test_combine_one_labelling_rule_and_xr_concat_of_any_shape():
    ff1 = flow_field(aligned_rec(seed=0), n_components=3, condition="target")  # two conditions
    ff2 = flow_field(aligned_rec(seed=1, n_trial=2), n_components=3)          # one condition "toy_maze"
    ff2 = ff2.assign(extra=("sample", np.ones(ff2.sizes["sample"])))
    with pytest.warns(UserWarning, match=r"dropped variables not present in every flow field: \['extra'\]"):
        both = combine_flow_fields({"a": ff1, "b": ff2}, dim="session")
    n1 = ff1.sizes["sample"]
    assert list(np.unique(both["condition"].values[:n1])) == ["a/left", "a/right"]
    assert set(both["condition"].values[n1:]) == {"b"}  # a one-condition field is named by its key
    np.testing.assert_array_equal(both["base_condition"].values[n1:], ff2["condition"].values)
    expected = xr.concat([ff1["hand_velocity"], ff2["hand_velocity"]], dim="sample")
    np.testing.assert_array_equal(both["hand_velocity"].values, expected.values)
    assert both["hand_velocity"].dims == ("sample", "axis") and list(both["axis"].values) == ["x", "y"]
    np.testing.assert_array_equal(both["trial"].values, np.r_[ff1["trial"].values, ff2["trial"].values])
    assert both.attrs["combined"] == "a,b" and both.attrs["source"] == "toy_maze"  # shared attrs are kept
    # labels that do not change leave no base_condition behind
    same = combine_flow_fields({"left": ff1.where(ff1.condition == "left", drop=True),
                                "right": ff1.where(ff1.condition == "right", drop=True)})
    assert "base_condition" not in same.coords and set(same["condition"].values) == {"left", "right"}
    with pytest.raises(MarbleDataError, match="dim='condition' clashes"):
        combine_flow_fields({"a": ff1}, dim="condition")
