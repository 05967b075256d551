"""inner_product_features="invariant": least-squares derivatives and their exact rotation invariants."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from marble_widgets.data.containers import flow_field_from_arrays
from marble_widgets.engine.config import FeatureConfig, GraphConfig
from marble_widgets.engine.feature_store import fingerprint, write_feature_store
from marble_widgets.engine.features import derivative_features
from marble_widgets.engine.geometry import build_geometry
from marble_widgets.engine.layers import INVARIANTS, InnerProductFeatures, InvariantFeatures, invariant_names
from marble_widgets.estimator import MARBLE

FIT = dict(order=2, k=10, epochs=3, hidden_channels=(16,), diffusion=False, patience=None, verbose=False, seed=2)


def _orthogonal_with_reflection(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    return q if np.linalg.det(q) < 0 else q * np.array([-1.0, 1.0, 1.0])  # det -1: a rotation and a reflection


def _volume_field(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """A non-linear field on a 3-D cloud (global gauge: derivatives along the ambient axes)."""
    x = np.random.default_rng(seed).standard_normal((n, 3))
    return x, np.c_[np.sin(x[:, 1]) + x[:, 2], x[:, 0] * x[:, 2], np.cos(x[:, 0]) - x[:, 1] ** 2]


def _surface_field(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A tangent field on a curved surface in 3-D (local gauges: 2 tangent directions)."""
    u = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    x = np.c_[u, 0.3 * (u[:, 0] ** 2 - u[:, 1] ** 2)]
    du = np.c_[-u[:, 1] + 0.3 * u[:, 0], u[:, 0]]  # velocity in the chart, pushed forward to the surface
    return x, np.c_[du, 0.6 * (u[:, 0] * du[:, 0] - u[:, 1] * du[:, 1])]


def _features(x: np.ndarray, v: np.ndarray, local: bool, order: int, invariant: bool) -> np.ndarray:
    """Invariants (or the reference's inner products, O_j = I) of every node, float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = build_geometry(x, v, None, GraphConfig(k=12, local_gauges=local), verbose=False)
    lin = torch.as_tensor(derivative_features(g, order=order, invariant=invariant))
    d = g.n_directions
    layer = InvariantFeatures(d, d, order) if invariant else InnerProductFeatures(lin.shape[1] // d, d).double()
    with torch.no_grad():
        return layer(lin).numpy()


@pytest.mark.parametrize("local", [False, True], ids=["global", "local"])
@pytest.mark.parametrize("order", [1, 2])
def test_invariants_of_a_rotated_and_reflected_field_are_unchanged(local, order):
    x, v = _surface_field() if local else _volume_field()
    q = _orthogonal_with_reflection(1)
    ours, turned = (_features(a, b, local, order, True) for a, b in ((x, v), (x @ q.T, v @ q.T)))
    assert ours.shape == (len(x), len(invariant_names(order)))
    np.testing.assert_allclose(turned, ours, rtol=1e-6, atol=1e-9 * np.abs(ours).max())
    # the reference's inner products of the same fields change: why the extension exists (docs/spec.md §8)
    ref, ref_turned = (_features(a, b, local, order, False) for a, b in ((x, v), (x @ q.T, v @ q.T)))
    assert np.abs(ref_turned - ref).max() > 0.1


def _numpy_invariants(f: np.ndarray, jac: np.ndarray, hess: np.ndarray) -> dict[str, float]:
    """Every invariant of one node from its tensors, written out with explicit loops and matrix powers."""
    d = len(f)
    jf, jtf = jac @ f, jac.T @ f
    lap = np.array([sum(hess[a, c, c] for c in range(d)) for a in range(d)])
    grad_div = np.array([sum(hess[a, a, e] for a in range(d)) for e in range(d)])
    hff = np.array([sum(hess[a, c, e] * f[c] * f[e] for c in range(d) for e in range(d)) for a in range(d)])
    return {
        "|f|^2": f @ f, "tr J": np.trace(jac), "tr J^2": np.trace(np.linalg.matrix_power(jac, 2)),
        "tr J^T J": np.sum(jac**2), "tr J^3": np.trace(np.linalg.matrix_power(jac, 3)),
        "f.Jf": f @ jf, "f.J^2 f": f @ np.linalg.matrix_power(jac, 2) @ f, "|Jf|^2": jf @ jf, "|J^T f|^2": jtf @ jtf,
        "|H|^2": np.sum(hess**2), "|lap f|^2": lap @ lap, "|grad div f|^2": grad_div @ grad_div,
        "f.lap f": f @ lap, "f.grad div f": f @ grad_div, "H:fff": f @ hff, "|H:ff|^2": hff @ hff,
        "Jf.H:ff": jf @ hff,
        "H:(J f)": sum(hess[a, c, e] * jac[a, c] * f[e] for a in range(d) for c in range(d) for e in range(d)),
    }


def test_each_invariant_matches_numpy_on_hand_built_tensors():
    rng = np.random.default_rng(4)
    f, jac, hess = rng.standard_normal(3), rng.standard_normal((3, 3)), rng.standard_normal((3, 3, 3))
    row = torch.as_tensor(np.concatenate([f, jac.ravel(), hess.ravel()]))[None]  # layout [F0, F1, F2] (§7.3)
    out = InvariantFeatures(3, 3, 2)(row).numpy()[0]
    expect = _numpy_invariants(f, jac, hess)
    degree = {name: k for name, k, _, _ in INVARIANTS}
    assert list(expect) == invariant_names(2) == [name for name, *_ in INVARIANTS]
    for value, name in zip(out, invariant_names(2)):
        phi = expect[name]
        assert value == pytest.approx(np.sign(phi) * abs(phi) ** (1 / degree[name]), rel=1e-12), name
    no_f = InvariantFeatures(3, 3, 2, include_self=False)(row[:, 3:]).numpy()[0]
    assert no_f == pytest.approx([out[invariant_names(2).index(n)] for n in invariant_names(2, False)], rel=1e-12)
    assert invariant_names(2, False) == ["tr J", "tr J^2", "tr J^T J", "tr J^3", "|H|^2", "|lap f|^2",
                                         "|grad div f|^2"]


def test_a_linear_field_has_its_matrix_as_jacobian_and_no_second_derivative():
    """v = A x + b: the least-squares kernels give J = A and H = 0 at every node, so tr J = tr A etc."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (250, 3))
    a = rng.standard_normal((3, 3))
    v = x @ a.T + [0.5, -1.0, 2.0]
    g = build_geometry(x, v, None, GraphConfig(k=10), verbose=False)
    lin = derivative_features(g, order=2, invariant=True)
    np.testing.assert_allclose(lin[:, 3:12].reshape(-1, 3, 3), np.broadcast_to(a, (len(x), 3, 3)), atol=1e-10)
    np.testing.assert_allclose(lin[:, 12:], 0.0, atol=1e-10)
    inv = InvariantFeatures(3, 3, 1)(torch.as_tensor(lin[:, :12])).numpy()
    names = invariant_names(1)
    for i in (0, 17, 123):
        expect = _numpy_invariants(g.signal[i], a, np.zeros((3, 3, 3)))
        phi = np.array([expect[n] for n in names])
        degree = np.array([k for n, k, _, _ in INVARIANTS if n in names])
        np.testing.assert_allclose(inv[i], np.sign(phi) * np.abs(phi) ** (1 / degree), rtol=1e-9)
    assert inv[0, names.index("tr J")] == pytest.approx(np.trace(a), rel=1e-10)
    # the reference's kernels are a derivative times a per-axis length (§7.1): not A
    assert np.abs(derivative_features(g, order=1)[:, 3:].reshape(-1, 3, 3) - a).max() > 0.1


def test_signed_root_has_a_finite_gradient_where_an_invariant_is_zero():
    x = torch.zeros(2, 12, dtype=torch.float64, requires_grad=True)  # f = 0, J = 0: every invariant 0
    with torch.no_grad():
        x[1] = torch.arange(12.0)
    InvariantFeatures(3, 3, 1)(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_bad_values_are_refused_with_the_allowed_ones_named():
    x, v = _volume_field(n=60)
    ff = flow_field_from_arrays(x, v)
    with pytest.raises(ValueError, match=r"^inner_product_features must be False, True or 'invariant'; "
                                         r"got 'invariants'\.$"):
        MARBLE(inner_product_features="invariants", **FIT).fit(ff)
    with pytest.raises(ValueError, match=r"supports order 0, 1 or 2; got order=3"):
        MARBLE(**{**FIT, "order": 3}, inner_product_features="invariant").fit(ff)
    with pytest.raises(ValueError, match=r"needs a vector field .* got s = 1, d' = 3"):
        InvariantFeatures(1, 3, 1)  # a scalar signal on 3-D positions (engine level; flow fields have s = n)


@pytest.fixture(scope="module")
def flows() -> tuple[xr.Dataset, xr.Dataset]:
    """A two-condition flow field and its copy rotated and reflected by one orthogonal matrix."""
    parts = [_volume_field(seed, 150) for seed in (0, 1)]
    q = _orthogonal_with_reflection(3)
    xs, vs = [p[0] for p in parts], [p[1] * (c + 1) for c, p in enumerate(parts)]
    return (flow_field_from_arrays(xs, vs, conditions=["a", "b"]),
            flow_field_from_arrays([x @ q.T for x in xs], [v @ q.T for v in vs], conditions=["a", "b"]))


def test_a_fitted_invariant_model_round_trips_through_save_and_load(tmp_path, flows):
    ff = flows[0]
    model = MARBLE(inner_product_features="invariant", **FIT).fit(ff)
    loaded = MARBLE.load(model.save(tmp_path / "model.pt"))
    assert loaded.get_params()["inner_product_features"] == "invariant"
    assert loaded.network_.spec.inner_product_features == "invariant"
    assert loaded.network_.spec.n_in == len(invariant_names(2))
    np.testing.assert_array_equal(loaded.transform(ff).values, model.transform(ff).values)


@pytest.mark.parametrize("local", [False, True], ids=["global", "local"])
def test_fitting_a_rotated_copy_gives_the_same_inputs_and_embedding(flows, local):
    ff, turned = flows
    models = [MARBLE(inner_product_features="invariant", local_gauges=local, **FIT).fit(f) for f in flows]
    inputs = []
    for model, f in zip(models, (ff, turned)):
        lin = torch.as_tensor(model.results(f)["features"].values)
        inputs.append(model.network_.inner(lin.double()).numpy())
    np.testing.assert_allclose(inputs[1], inputs[0], rtol=1e-5, atol=1e-6 * np.abs(inputs[0]).max())
    np.testing.assert_allclose(models[1].transform(turned).values, models[0].transform(ff).values, atol=1e-4)


def test_the_store_holds_the_least_squares_features_under_its_own_fingerprint(tmp_path, flows):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = build_geometry(flows[0]["x"].values, flows[0]["v"].values, flows[0]["condition"].values,
                           GraphConfig(k=10), verbose=False)
    invariant = FeatureConfig(order=2, diffusion=False, inner_product_features="invariant")
    stored = zarr.open_group(str(write_feature_store(tmp_path / "f.zarr", g, invariant)), mode="r")["features"][:]
    np.testing.assert_allclose(stored, derivative_features(g, order=2, invariant=True), rtol=1e-6, atol=1e-6)
    parity = FeatureConfig(order=2, diffusion=False, inner_product_features=True)
    plain = FeatureConfig(order=2, diffusion=False)
    assert fingerprint(g, invariant) != fingerprint(g, parity) == fingerprint(g, plain)  # parity stores unchanged


def test_invariant_mode_trains_with_diffusion(flows):
    model = MARBLE(inner_product_features="invariant", **{**FIT, "diffusion": True}).fit(flows[0])
    assert np.isfinite(model.loss_history_["train_loss"].values).all() and np.isfinite(model.diffusion_time_)
