"""MARBLE.transform(flow_field, support=...): one graph with the support, only the flow field's rows back."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from marble_widgets.data.containers import flow_field_from_arrays
from marble_widgets.estimator import MARBLE, SUPPORT_CONDITION

FAST = dict(k=8, epochs=3, verbose=False, hidden_channels=(16,), out_dim=3)


def _rotation(n: int, seed: int, conditions: list[str]) -> xr.Dataset:
    """Rotational flow fields on the unit square, one per condition, with a behaviour variable."""
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(-1, 1, (n, 2)) for _ in conditions]
    vs = [(c + 1) * np.c_[-x[:, 1], x[:, 0]] for c, x in enumerate(xs)]
    ff = flow_field_from_arrays(xs, vs, conditions=conditions)
    return ff.assign(speed=("sample", np.linalg.norm(ff["v"].values, axis=1)))


@pytest.fixture(scope="module")
def train() -> xr.Dataset:
    return _rotation(100, 0, ["a", "b"])


@pytest.fixture(scope="module")
def test() -> xr.Dataset:
    return _rotation(15, 1, ["a", "b"])


@pytest.fixture(scope="module")
def model(train) -> MARBLE:
    return MARBLE(**FAST).fit(train)


def _one_condition(ff: xr.Dataset) -> xr.Dataset:
    return ff.assign_coords(condition=("sample", np.full(ff.sizes["sample"], "any")))


def test_support_equals_the_hand_made_concatenation_then_slice(model, train, test):
    z = model.transform(test, support=train)
    joint = xr.concat([_one_condition(train), _one_condition(test)], dim="sample")
    by_hand = model.transform(joint).values[train.sizes["sample"]:]
    np.testing.assert_array_equal(z.values, by_hand)
    assert z.shape == (test.sizes["sample"], 3) and np.isfinite(z.values).all()
    # the held-out samples' own graph (two small per-condition graphs) embeds them differently
    assert not np.allclose(z.values, model.transform(test).values, atol=1e-3)


def test_support_returns_the_flow_fields_labels_and_ignores_every_condition_label(model, train, test):
    z = model.transform(test, support=train)
    for name in ("condition", "trial", "time", "speed"):
        np.testing.assert_array_equal(z[name].values, test[name].values)
    relabelled = test.assign_coords(condition=("sample", np.where(test["condition"].values == "a", "b", "a")))
    support_relabelled = train.assign_coords(condition=("sample", np.full(train.sizes["sample"], "x")))
    np.testing.assert_array_equal(model.transform(relabelled, support=support_relabelled).values, z.values)


def test_support_none_is_the_plain_transform_and_no_input_is_modified(model, train, test):
    before_train, before_test = train.copy(deep=True), test.copy(deep=True)
    plain = model.transform(test)
    np.testing.assert_array_equal(model.transform(test, support=None).values, plain.values)
    model.transform(test, support=train)
    xr.testing.assert_identical(train, before_train)
    xr.testing.assert_identical(test, before_test)
    assert SUPPORT_CONDITION not in set(test["condition"].values) | set(train["condition"].values)


def test_an_empty_support_is_the_one_condition_transform(model, train):
    z = model.transform(train, support=train.isel(sample=slice(0, 0)))
    np.testing.assert_array_equal(z.values, model.transform(_one_condition(train)).values)


def test_support_with_other_dims_or_variables_is_refused(model, train, test):
    three = flow_field_from_arrays([np.ones((20, 3)) * np.arange(20)[:, None]], [np.ones((20, 3))])
    with pytest.raises(ValueError, match=r"support's dims \['x1', 'x2', 'x3'\] differ from flow_field's"):
        model.transform(test, support=three)
    renamed = train.assign_coords(dim=["PC1", "PC2"])
    with pytest.raises(ValueError, match=r"differ from flow_field's .*same preprocessing"):
        model.transform(test, support=renamed)
    with pytest.raises(ValueError, match=r"support needs a variable 'v' with dims \('sample', 'dim'\)"):
        model.transform(test, support=train.drop_vars("v"))
    with pytest.raises(TypeError, match="support must be a flow-field xarray.Dataset .* got ndarray"):
        model.transform(test, support=train["x"].values)
    bad = train.copy(deep=True)
    bad["x"][3, 0] = np.nan
    with pytest.raises(ValueError, match=r"support\['x'\] contains 1 NaN/inf value\(s\) \(first at sample 3\)"):
        model.transform(test, support=bad)
