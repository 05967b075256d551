"""Seeded toy systems: analytic vectors, bounds, seeds, tangency and rotation invariants."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_ivp
from scipy.spatial.distance import pdist
from scipy.stats import kstest, special_ortho_group

from marble_widgets.data.containers import combine_flow_fields
from marble_widgets.data.errors import MarbleDataError
from marble_widgets.datasets import concat_fields
from marble_widgets.data.synthetic import (
    circle_field, constant_field, lattice, linear_field, paraboloid_field, planar_fields, random_rotation,
    rotated_copies, rotation_field, saddle_field, sphere_field, van_der_pol, vortex_field,
)

MUS = [-1.0, -0.3, 0.0, 0.4, 1.0]


@pytest.fixture(scope="module")
def vdp_flat() -> xr.Dataset:
    return van_der_pol(MUS, n_initial=25, lift_alpha=None, seed=3)


@pytest.fixture(scope="module")
def vdp_lifted() -> xr.Dataset:
    return van_der_pol(MUS, n_initial=25, lift_alpha=0.05, seed=3)


def _vdp_rhs(x: np.ndarray, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    return np.column_stack([y, mu * (1 - x**2) * y - x])


def test_van_der_pol_velocities_satisfy_the_equations(vdp_flat):
    x, v, mu = vdp_flat["x"].values, vdp_flat["v"].values, vdp_flat["mu"].values
    np.testing.assert_allclose(v, _vdp_rhs(x[:, 0], x[:, 1], mu), rtol=0, atol=1e-8)
    assert list(vdp_flat["dim"].values) == ["x", "y"]


def test_van_der_pol_positions_follow_trajectories(vdp_flat):
    """Each kept sample matches an independent high-accuracy integration from the trial's t=0 sample."""
    checked = 0
    for cond, mu in zip(["mu=-1.000", "mu=+0.400", "mu=+1.000"], [-1.0, 0.4, 1.0]):
        for trial in range(0, 25, 6):
            sel = vdp_flat.where((vdp_flat.condition == cond) & (vdp_flat.trial == trial), drop=True)
            if sel.sizes["sample"] < 2 or sel["time"].values[0] != 0.0:
                continue
            t = sel["time"].values
            ref = solve_ivp(lambda _t, s: [s[1], mu * (1 - s[0] ** 2) * s[1] - s[0]], (0, t[-1]),
                            sel["x"].values[0], t_eval=t, method="DOP853", rtol=1e-11, atol=1e-12)
            np.testing.assert_allclose(sel["x"].values, ref.y.T, atol=1e-4)
            checked += 1
    assert checked >= 10


def test_van_der_pol_starts_in_box_and_respects_bound(vdp_flat):
    start = vdp_flat["x"].values[vdp_flat["time"].values == 0]
    assert np.all(np.abs(start) <= 3.0)
    assert np.all(np.abs(vdp_flat["x"].values) < 5.0)
    tight = van_der_pol([1.0, -1.0], n_initial=40, lift_alpha=None, bound=2.5, seed=1)
    assert np.all(np.abs(tight["x"].values) < 2.5)
    # some initial conditions in [-3, 3]^2 lie outside (-2.5, 2.5)^2, so fewer samples survive
    assert tight.sizes["sample"] < 2 * 40 * 6


def test_van_der_pol_diverging_trajectories_are_dropped(vdp_flat):
    """For mu = -1 the limit cycle repels: some trajectories escape and lose their later samples."""
    trials = vdp_flat["trial"].values[vdp_flat["condition"].values == "mu=-1.000"]
    per_trial = np.bincount(trials, minlength=25)
    assert per_trial.max() == 6 and per_trial.min() < 6
    full = vdp_flat.where(vdp_flat.condition == "mu=+0.000", drop=True)
    assert full.sizes["sample"] == 25 * 6  # mu = 0: circles of radius <= 3 sqrt(2) < 5, nothing dropped


def test_van_der_pol_labels_and_coords(vdp_flat):
    mu = vdp_flat["mu"].values
    assert list(vdp_flat["condition"].values) == [f"mu={m:+.3f}" for m in mu]
    assert set(np.unique(vdp_flat["time"].values)) <= {0.0, 0.5, 1.0, 1.5, 2.0, 2.5}
    assert set(np.unique(vdp_flat["trial"].values)) <= set(range(25))
    assert sorted(set(mu)) == MUS


def test_van_der_pol_lift(vdp_flat, vdp_lifted):
    x, v = vdp_lifted["x"].values, vdp_lifted["v"].values
    a = 0.05
    np.testing.assert_array_equal(x[:, :2], vdp_flat["x"].values)
    np.testing.assert_allclose(x[:, 2], -(a * x[:, 0]) ** 2 - (a * x[:, 1]) ** 2, rtol=1e-14)
    np.testing.assert_allclose(v[:, :2], vdp_flat["v"].values, atol=1e-12)
    end = x[:, :2] + v[:, :2]
    np.testing.assert_allclose(v[:, 2], (-(a * end[:, 0]) ** 2 - (a * end[:, 1]) ** 2) - x[:, 2], atol=1e-12)
    assert list(vdp_lifted["dim"].values) == ["x", "y", "z"]


def test_van_der_pol_seeds():
    a = van_der_pol([0.5], n_initial=10, seed=7)
    b = van_der_pol([0.5], n_initial=10, seed=7)
    c = van_der_pol([0.5], n_initial=10, seed=8)
    xr.testing.assert_identical(a, b)
    assert a.sizes["sample"] != c.sizes["sample"] or not np.array_equal(a["x"].values, c["x"].values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"bound": -1.0}, "bound"), ({"t_samples": (0.0, 1.0, 0.5)}, "t_samples"), ({"n_initial": 0}, "n_initial")],
)
def test_van_der_pol_bad_arguments(kwargs, match):
    with pytest.raises(MarbleDataError, match=match):
        van_der_pol([0.1], **kwargs)


def test_linear_field_is_exactly_affine():
    A = np.array([[0.5, -2.0], [1.5, 0.25]])
    b = np.array([0.1, -0.3])
    A_before = A.copy()
    ds = linear_field(A, b, n=300, seed=2)
    x = ds["x"].values
    np.testing.assert_array_equal(ds["v"].values, x @ A.T + b)
    np.testing.assert_array_equal(linear_field(A, n=300, seed=2)["v"].values, x @ A.T)
    assert np.all(np.abs(x) <= 1) and x.shape == (300, 2)
    np.testing.assert_array_equal(A, A_before)
    with pytest.raises(MarbleDataError, match="A must be a square"):
        linear_field(np.ones((2, 3)))


def test_named_planar_fields():
    pts = lattice(0.5, 2.0)
    rot = rotation_field(2.0, points=pts)
    np.testing.assert_allclose(rot["v"].values, 2.0 * np.column_stack([-pts[:, 1], pts[:, 0]]))
    sad = saddle_field(points=pts)
    np.testing.assert_allclose(sad["v"].values, np.column_stack([pts[:, 0], -pts[:, 1]]))
    const = constant_field((-1, -1), n=50, seed=1)
    assert np.all(const["v"].values == -1.0)
    vort = vortex_field(-1.0, points=pts)
    x, y = pts[:, 0], pts[:, 1]
    expected = np.column_stack([y, -(x + 1)]) / np.sqrt((x + 1) ** 2 + y**2 + 0.1)[:, None]
    np.testing.assert_allclose(vort["v"].values, expected, rtol=1e-14)
    shifted = vortex_field((0.0, 0.5), points=pts)["v"].values
    np.testing.assert_allclose(shifted[:, 1], -x / np.sqrt(x**2 + (y - 0.5) ** 2 + 0.1))
    with pytest.raises(MarbleDataError, match="centre must be"):
        vortex_field((1.0, 2.0, 3.0))


def test_planar_fields_conditions_and_seeds():
    ds = planar_fields(n=64, seed=10)
    names = ["constant_neg", "constant_pos", "vortex_left", "vortex_right"]
    assert list(dict.fromkeys(ds["condition"].values)) == names
    assert ds.sizes["sample"] == 4 * 64
    vr = ds.where(ds.condition == "vortex_right", drop=True)
    np.testing.assert_array_equal(vr["x"].values, vortex_field(1.0, n=64, seed=13)["x"].values)
    with pytest.raises(MarbleDataError, match="unknown planar field"):
        planar_fields(["spiral"])


def test_lattice():
    pts = lattice(0.1, 2.0)
    assert pts.shape == (21 * 21, 2)
    np.testing.assert_allclose([pts.min(), pts.max()], [-1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(np.unique(np.round(np.diff(np.unique(pts[:, 0])), 12)), [0.1])
    with pytest.raises(MarbleDataError, match="whole number"):
        lattice(0.3, 1.0)


@pytest.mark.parametrize("kind", ["rotation", "random_tangent"])
def test_sphere_field_is_tangent(kind):
    ds = sphere_field(500, kind=kind, seed=4)
    x, v = ds["x"].values, ds["v"].values
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    assert np.max(np.abs(np.sum(x * v, axis=1))) < 1e-12
    assert np.linalg.norm(v) > 1.0
    assert abs(x[:, 2].mean()) < 0.1  # roughly uniform: no pole bias


def test_sphere_field_bad_kind():
    with pytest.raises(MarbleDataError, match="kind must be"):
        sphere_field(10, kind="spiral")


def test_paraboloid_field_global_rescale():
    flat = planar_fields(["vortex_left", "constant_pos"], n=100, seed=0)
    lifted = paraboloid_field(flat, alpha=0.2)
    x, v = lifted["x"].values, lifted["v"].values
    np.testing.assert_array_equal(x[:, :2], flat["x"].values)
    np.testing.assert_allclose(x[:, 2], -(0.2 * x[:, 0]) ** 2 - (0.2 * x[:, 1]) ** 2)
    np.testing.assert_allclose(np.linalg.norm(v), np.linalg.norm(flat["v"].values), rtol=1e-12)
    end = flat["x"].values + flat["v"].values
    raw = np.column_stack([flat["v"].values, -(0.2 * end[:, 0]) ** 2 - (0.2 * end[:, 1]) ** 2 - x[:, 2]])
    ratio = np.linalg.norm(v, axis=1) / np.linalg.norm(raw, axis=1)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # one global factor, not per vector
    assert ratio[0] < 1.0
    assert list(lifted["condition"].values) == list(flat["condition"].values)
    vdp = paraboloid_field(van_der_pol([0.2], n_initial=4, lift_alpha=None), alpha=0.05)
    assert np.all(vdp["mu"].values == 0.2)  # extra sample coords are carried over
    by_name = paraboloid_field("vortex_right", n=30, seed=5)
    np.testing.assert_array_equal(by_name["x"].values[:, :2], vortex_field(1.0, n=30, seed=5)["x"].values)


def test_circle_field():
    ds = circle_field(80, seed=1, radius=2.0)
    x, v = ds["x"].values, ds["v"].values
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 2.0)
    np.testing.assert_allclose(x[:, 2], 0.0)
    assert np.max(np.abs(np.sum(x * v, axis=1))) < 1e-12


def test_rotated_copies_preserve_geometry(vdp_lifted):
    small = vdp_lifted.isel(sample=slice(0, 60))
    before = small.copy(deep=True)
    out = rotated_copies(small, n_copies=2, seed=11)
    xr.testing.assert_identical(small, before)
    assert out.sizes["sample"] == 3 * 60
    assert set(out["rotation"].values) == {0, 1, 2}
    x0, v0 = small["x"].values, small["v"].values
    for k in (0, 1, 2):
        part = out.where(out.rotation == k, drop=True)
        np.testing.assert_allclose(pdist(part["x"].values), pdist(x0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(part["v"].values, axis=1), np.linalg.norm(v0, axis=1), rtol=1e-12)
        np.testing.assert_array_equal(part["mu"].values, small["mu"].values)
        if k:
            assert not np.allclose(part["x"].values, x0)
            assert all(c.endswith(f"|rot{k}") for c in part["condition"].values)
    again = rotated_copies(small, n_copies=2, seed=11, include_original=False)
    np.testing.assert_array_equal(again["x"].values, out["x"].values[60:])


def test_random_rotation_is_scipys_special_ortho_group_draw():
    for d in (1, 2, 3, 6):
        q = random_rotation(d, np.random.default_rng(4))
        scipy_draw = special_ortho_group.rvs(d, random_state=np.random.default_rng(4))
        np.testing.assert_array_equal(q, np.reshape(scipy_draw, (d, d)))
        np.testing.assert_allclose(q @ q.T, np.eye(d), atol=1e-12)
        assert np.linalg.det(q) == pytest.approx(1.0)
    rng = np.random.default_rng(0)  # Haar on SO(2): the rotation angle is uniform on (-pi, pi]
    angles = [np.arctan2(r[1, 0], r[0, 0]) for r in (random_rotation(2, rng) for _ in range(2000))]
    assert kstest(angles, "uniform", args=(-np.pi, 2 * np.pi)).pvalue > 0.01
    with pytest.raises(MarbleDataError, match="d must be a positive integer"):
        random_rotation(0, rng)


def test_concat_fields_is_combine_flow_fields():
    assert concat_fields is combine_flow_fields
    flat = planar_fields(["rotation", "saddle"], n=20, seed=0)
    np.testing.assert_array_equal(flat["field"].values, np.repeat(["rotation", "saddle"], 20))
    assert "base_condition" not in flat.coords and flat.attrs["source"] == "rotation+saddle"
