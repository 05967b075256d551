"""MARBLEEnsemble members that differ on purpose: per-member parameters, per-member flow fields, support, files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from marble_widgets.data.containers import flow_field_from_arrays
from marble_widgets.ensemble import MANIFEST, MARBLEEnsemble
from marble_widgets.estimator import MARBLE

FAST = dict(k=10, epochs=3, verbose=False, hidden_channels=(16,), out_dim=3)
MEMBERS = [{}, {"k": 6}, {"order": 1}]


def _field(n: int, seed: int, scale: float = 1.0) -> xr.Dataset:
    """A rotational flow field (two conditions) whose vectors are ``scale`` times the unit rotation."""
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(-1, 1, (n, 2)) for _ in range(2)]
    vs = [scale * (c + 1) * np.c_[-x[:, 1], x[:, 0]] for c, x in enumerate(xs)]
    return flow_field_from_arrays(xs, vs, conditions=["c0", "c1"])


@pytest.fixture(scope="module")
def fields() -> list[xr.Dataset]:
    """Member inputs of the same samples: member 2 reads vectors of another 'preprocessing' (scaled, curled)."""
    base = _field(100, 0)
    other = base.copy(deep=True)
    other["v"] = other["v"] * 0.5 + 0.1 * np.sin(3 * other["x"])
    return [base, base, other]


@pytest.fixture(scope="module")
def held_out(fields) -> list[xr.Dataset]:
    test = _field(20, 1)
    other = test.copy(deep=True)
    other["v"] = other["v"] * 0.5 + 0.1 * np.sin(3 * other["x"])
    return [test, test, other]


@pytest.fixture(scope="module")
def diverse(fields) -> MARBLEEnsemble:
    return MARBLEEnsemble(FAST, seed=1, members=MEMBERS, combine="concat").fit(fields)


def test_members_are_the_base_with_their_overrides_and_their_own_seeds(diverse):
    assert diverse.size == 3 and diverse.member_seeds == [3, 4, 5]
    got = [{k: m.get_params()[k] for k in ("k", "order", "seed", "out_dim")} for m in diverse.members_]
    assert got == [{"k": 10, "order": 2, "seed": 3, "out_dim": 3}, {"k": 6, "order": 2, "seed": 4, "out_dim": 3},
                   {"k": 10, "order": 1, "seed": 5, "out_dim": 3}]
    assert MARBLEEnsemble(FAST, members=[{"k": 6}] * 2).member_seeds == [0, 1]  # a repeated dict: two seeds


def test_each_member_is_fitted_on_its_own_flow_field(diverse, fields):
    for params, member, ff in zip(diverse.member_params(), diverse.members_, fields):
        alone = MARBLE(**params).fit(ff)
        np.testing.assert_array_equal(member.transform(ff).values, alone.transform(ff).values)
    z = diverse.transform(fields)
    parts = [m.transform(f).values @ r for m, f, r in zip(diverse.members_, fields, diverse.rotations_)]
    np.testing.assert_allclose(z.values, np.hstack(parts), atol=1e-12)
    assert diverse.n_inputs_ == 2  # two distinct flow fields among the three members


def test_transform_with_support_is_every_members_support_transform(diverse, fields, held_out):
    z = diverse.transform(held_out, support=fields)
    parts = [m.transform(t, support=f).values @ r
             for m, t, f, r in zip(diverse.members_, held_out, fields, diverse.rotations_)]
    np.testing.assert_allclose(z.values, np.hstack(parts), atol=1e-12)
    np.testing.assert_array_equal(z["condition"].values, held_out[0]["condition"].values)
    assert not np.allclose(z.values, diverse.transform(held_out).values, atol=1e-3)


def test_one_shared_flow_field_and_a_list_of_one_are_the_same_fit(fields):
    shared = MARBLEEnsemble(FAST, members=[{}, {"k": 6}]).fit(fields[0])
    listed = MARBLEEnsemble(FAST, members=[{}, {"k": 6}]).fit(fields[:1])
    np.testing.assert_array_equal(shared.transform(fields[0]).values, listed.transform([fields[0]]).values)
    assert shared.n_inputs_ == 1


def test_members_and_flow_field_lists_are_checked(diverse, fields, held_out):
    with pytest.raises(ValueError, match=r"a list of 3 \(one per member\); got a list of 2"):
        MARBLEEnsemble(FAST, members=MEMBERS).fit(fields[:2])
    shuffled = fields[2].isel(sample=np.r_[1, 0, 2:fields[2].sizes["sample"]])
    with pytest.raises(ValueError, match=r"flow_field\[2\] has other samples than flow_field\[0\]: coordinate "
                                         r"'time' differs at sample 0"):
        MARBLEEnsemble(FAST, members=MEMBERS).fit([fields[0], fields[1], shuffled])
    with pytest.raises(ValueError, match=r"flow_field\[1\] has 40 samples and flow_field\[0\] 200"):
        MARBLEEnsemble(FAST, members=MEMBERS).fit([fields[0], _field(20, 3), fields[2]])
    with pytest.raises(ValueError, match=r"fitted on 2 per-member flow fields .* pass a list of 3"):
        diverse.transform(held_out[0])
    with pytest.raises(ValueError, match=r"support must be one flow-field Dataset or a list of 3"):
        diverse.transform(held_out, support=fields[:2])
    with pytest.raises(TypeError, match="flow_field must be a flow-field xarray.Dataset or a list of them"):
        diverse.transform(fields[0]["x"].values)


@pytest.mark.parametrize("kwargs, message", [
    ({"members": [{}]}, r"members must be None or a list of >= 2 dicts"),
    ({"members": {"k": 5}}, r"members must be None or a list of >= 2 dicts"),
    ({"members": [{}, 3]}, r"members\[1\] must be a dict of MARBLE parameters"),
    ({"members": [{}, {"kk": 3}]}, r"members\[1\] sets \['kk'\], which MARBLE does not have"),
    ({"members": [{}, {"seed": 3}]}, r"members\[1\] sets 'seed': members take their seeds from the ensemble"),
    ({"members": [{}, {}], "n_members": 3}, r"n_members=3 but members lists 2 members"),
    ({"members": [{}, {"out_dim": 4}], "combine": "concat"}, r"members embed in \[3, 4\] dimensions"),
])
def test_bad_members_are_named(fields, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MARBLEEnsemble(FAST, **kwargs).fit(fields[0])


def test_save_load_keeps_the_members_parameters(tmp_path, diverse, fields, held_out):
    back = MARBLEEnsemble.load(diverse.save(tmp_path / "ens"))
    assert back.members == [dict(m) for m in MEMBERS] and back.n_inputs_ == 2
    assert back.member_params() == diverse.member_params()
    np.testing.assert_allclose(back.transform(held_out, support=fields).values,
                               diverse.transform(held_out, support=fields).values, atol=1e-6)
    with pytest.raises(ValueError, match="per-member flow fields"):
        back.transform(held_out[0])


def test_an_ensemble_saved_before_per_member_settings_still_loads(tmp_path, fields):
    ens = MARBLEEnsemble(FAST, n_members=2, seed=0).fit(fields[0])
    out = ens.save(tmp_path / "old")
    manifest = json.loads((out / MANIFEST).read_text())
    for key in ("base", "member_overrides", "n_inputs"):
        manifest.pop(key)
    (out / MANIFEST).write_text(json.dumps(manifest))
    back = MARBLEEnsemble.load(out)
    assert back.members is None and back.n_inputs_ == 1 and back.size == 2
    np.testing.assert_allclose(back.transform(fields[0]).values, ens.transform(fields[0]).values, atol=1e-6)
