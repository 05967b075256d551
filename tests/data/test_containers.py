"""The flow-field container: schema, copies and clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from marble_widgets.data.containers import flow_field_from_arrays, make_flow_field
from marble_widgets.data.errors import MarbleDataError


def test_from_arrays_stacks_conditions_with_labels(rng):
    pos = [rng.normal(size=(5, 3)), rng.normal(size=(7, 3))]
    vec = [rng.normal(size=(5, 3)), rng.normal(size=(7, 3))]
    ds = flow_field_from_arrays(pos, vec, conditions=["a", "b"])
    assert ds["x"].shape == (12, 3) and ds["v"].shape == (12, 3)
    np.testing.assert_array_equal(ds["x"].values, np.concatenate(pos))
    np.testing.assert_array_equal(ds["v"].values, np.concatenate(vec))
    assert list(ds["condition"].values) == ["a"] * 5 + ["b"] * 7
    np.testing.assert_array_equal(ds["time"].values[5:], np.arange(7.0))
    np.testing.assert_array_equal(ds["trial"].values, [0] * 5 + [1] * 7)


def test_single_array_is_one_condition(rng):
    ds = flow_field_from_arrays(rng.normal(size=(4, 2)), rng.normal(size=(4, 2)))
    assert set(ds["condition"].values) == {"0"}


def test_inputs_are_copied_not_aliased(rng):
    x = rng.normal(size=(4, 2))
    before = x.copy()
    ds = make_flow_field(x, x, condition=["c"] * 4, trial=[0] * 4, time=np.arange(4.0))
    ds["x"].values[:] = 0
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize(
    "pos, vec, match",
    [
        ([np.zeros((3, 2))], [np.zeros((4, 2))], "same shape|differ in shape"),
        ([np.zeros((3, 2)), np.zeros((3, 3))], [np.zeros((3, 2)), np.zeros((3, 3))], "same d"),
        ([np.full((3, 2), np.nan)], [np.zeros((3, 2))], "non-finite"),
        ([np.zeros((3, 2))], [np.full((3, 2), np.inf)], "non-finite"),
        ([np.zeros((0, 2))], [np.zeros((0, 2))], "empty"),
        ([np.zeros((3, 2))], [np.zeros((3, 2)), np.zeros((3, 2))], "one of each"),
    ],
)
def test_bad_arrays_raise_clear_errors(pos, vec, match):
    with pytest.raises(MarbleDataError, match=match):
        flow_field_from_arrays(pos, vec)


def test_condition_label_count_must_match(rng):
    with pytest.raises(MarbleDataError, match="condition labels"):
        flow_field_from_arrays([rng.normal(size=(3, 2))], [rng.normal(size=(3, 2))], conditions=["a", "b"])


def test_sample_labels_and_positions_as_embedding_carry_behaviour(rng):
    from marble_widgets.data.containers import positions_as_embedding, sample_labels

    ds = make_flow_field(rng.normal(size=(4, 2)), rng.normal(size=(4, 2)), condition=["c"] * 4, trial=[0] * 4,
                         time=np.arange(4.0), sample_vars={"position": np.array([0.1, 0.2, 0.3, 0.4])})
    assert {"condition", "trial", "time", "position"} <= set(sample_labels(ds))
    emb = positions_as_embedding(ds)
    assert emb.dims == ("sample", "latent")
    np.testing.assert_array_equal(emb.values, ds["x"].values)
    np.testing.assert_array_equal(emb["position"].values, [0.1, 0.2, 0.3, 0.4])


def test_check_flow_field_is_the_one_validation_of_marbles_input():
    import xarray as xr

    from marble_widgets.data.containers import check_flow_field, flow_field_from_arrays

    rng = np.random.default_rng(0)
    ff = flow_field_from_arrays([rng.normal(size=(6, 2)), rng.normal(size=(9, 2))],
                                [rng.normal(size=(6, 2)), rng.normal(size=(9, 2))], conditions=["a", "b"])
    x, v, condition = check_flow_field(ff, k=5)
    np.testing.assert_array_equal(x, ff["x"].values)
    assert list(condition[:6]) == ["a"] * 6
    with pytest.raises(ValueError, match=r"condition 'a' has 6 samples but k=6 needs at least k\+1=7 per condition"):
        check_flow_field(ff, k=6)
    check_flow_field(ff)  # no k: no size rule
    bad = ff.copy(deep=True)
    bad["v"][3, 1] = np.nan
    with pytest.raises(ValueError, match=r"flow_field\['v'\] contains 1 NaN/inf value\(s\) \(first at sample 3\)"):
        check_flow_field(bad)
    with pytest.raises(ValueError, match="has no 'condition' coordinate"):
        check_flow_field(ff.drop_vars("condition"))
    with pytest.raises(TypeError, match="must be an xarray.Dataset"):
        check_flow_field(xr.DataArray([1.0]))
