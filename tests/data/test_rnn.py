"""The low-rank RNN generator: shipped networks, the dynamics equation, flow-field layout, accuracy vs gain."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import marble_widgets as mw
from marble_widgets.data import rnn
from marble_widgets.data.errors import MarbleDataError

SMALL = {"gains": [1.0, 0.5, 0.0], "n_trajectories": 3}
N_STIM, N_UNSTIM = 50, 225 - rnn.DROP_STEPS  # samples per trajectory: 2 x 25 stimulus steps, the rest


@pytest.fixture(scope="module")
def small() -> xr.Dataset:
    return mw.datasets.rnn_gain_modulation("trained0", seed=3, **SMALL)


def test_shipped_networks_are_rank_two_500_units_and_solve_the_task():
    names = mw.datasets.available_rnns()
    assert set(names) == {"trained0", "trained1", "resampled0a", "resampled0b"}
    for name in names:
        net = mw.datasets.load_rnn(name)
        assert net.m.shape == net.n.shape == (500, 2) and net.wi.shape == (2, 500) and net.wo.shape == (500,)
        assert (net.alpha, net.noise_std) == (0.2, 0.05)
        assert net.accuracy_gain1 >= 0.9, name


def test_same_seed_same_data_other_seed_other_noise(small):
    again = mw.datasets.rnn_gain_modulation("trained0", seed=3, **SMALL)
    xr.testing.assert_identical(small, again)
    other = mw.datasets.rnn_gain_modulation("trained0", seed=4, **SMALL)
    assert not np.array_equal(small["x"].values, other["x"].values)


def test_a_network_s_data_do_not_depend_on_the_other_networks_requested(small):
    both = mw.datasets.rnn_gain_modulation(["trained1", "trained0"], seed=3, **SMALL)
    mine = both.isel(sample=both["network"].values == "trained0")
    np.testing.assert_array_equal(mine["x"].values, small["x"].values)
    np.testing.assert_array_equal(both["accuracy"].sel(rnn="trained0").values, small["accuracy"].values[0])


def test_layout_shapes_and_coords(small):
    n_traj, gains = SMALL["n_trajectories"], SMALL["gains"]
    assert small.sizes["sample"] == len(gains) * n_traj * (N_STIM + N_UNSTIM)
    assert list(small["dim"].values) == ["PC1", "PC2", "PC3"]
    conds = list(dict.fromkeys(small["condition"].values))
    assert conds == [f"trained0|g={g:.3f}|stimulated" for g in gains] + [
        f"trained0|g={g:.3f}|unstimulated" for g in gains]
    stim = small["stimulated"].values
    assert set(small["epoch"].values[stim]) == {"stimulus1", "stimulus2"}
    assert set(small["epoch"].values[~stim]) == {"fixation", "delay", "decision"}
    assert stim.sum() == len(gains) * n_traj * N_STIM
    times = small["time"].values
    assert times.min() == pytest.approx(rnn.DROP_STEPS * rnn.DT) and times.max() == pytest.approx(274 * rnn.DT)
    s1 = times[small["epoch"].values == "stimulus1"]
    assert s1.min() == pytest.approx(0.5) and s1.max() == pytest.approx(0.98)
    # trial = gain index * n_trajectories + trajectory; the gain coord matches the condition label
    first = small.isel(sample=small["condition"].values == "trained0|g=0.500|stimulated")
    assert set(first["trial"].values) == {3, 4, 5} and set(first["gain"].values) == {0.5}
    assert small["accuracy"].dims == ("rnn", "rnn_gain") and small["accuracy"].shape == (1, 3)
    assert small["decision_output"].shape == (1, 3, n_traj)
    assert small["explained_variance_ratio"].dims == ("rnn", "dim")


def test_vectors_are_forward_differences_within_each_epoch(small):
    one = small.isel(sample=(small["trial"].values == 0) & (small["epoch"].values == "delay"))
    x, v = one["x"].values, one["v"].values
    assert np.all(np.diff(one["time"].values) == pytest.approx(rnn.DT))
    np.testing.assert_allclose(x[:-1] + v[:-1], x[1:], atol=1e-12)
    # the last delay sample's vector ends at the first stimulus-2 position (it is driven by the delay input)
    nxt = small.isel(sample=(small["trial"].values == 0) & (small["epoch"].values == "stimulus2"))
    np.testing.assert_allclose(x[-1] + v[-1], nxt["x"].values[0], atol=1e-12)


def test_one_step_matches_an_independent_dense_computation(rng):
    net = mw.datasets.load_rnn("trained1")
    h = rng.standard_normal((4, 500))
    u = rng.standard_normal((4, 2))
    xi = rng.standard_normal((4, 500))
    J = np.einsum("ir,jr->ij", net.m, net.n) / 500.0
    expected = np.empty_like(h)
    for b in range(4):
        drive = J @ np.tanh(h[b]) + net.wi.T @ u[b]
        expected[b] = h[b] + 0.2 * (-h[b] + drive) + 0.07 * xi[b]
    np.testing.assert_allclose(net.step(h, u, xi, 0.07), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.readout(h), np.tanh(h) @ net.wo / 500.0, rtol=1e-12)


def test_simulate_is_the_step_iterated_with_one_noise_draw_per_step():
    net = mw.datasets.load_rnn("trained0")
    u = np.stack([rnn.dms_input("A", "B", 1.0)] * 2)
    states, z, _ = net.simulate(u, 0.05, np.random.default_rng(7))
    draw = np.random.default_rng(7)
    h = np.zeros((2, 500))
    for t in range(u.shape[1]):
        h = net.step(h, u[:, t], draw.standard_normal((2, 500)), 0.05)
        np.testing.assert_array_equal(states[:, t + 1], h)
        np.testing.assert_array_equal(z[:, t], net.readout(h))
    assert np.all(states[:, 0] == 0.0)


def test_pcs_equal_a_pca_of_the_full_states():
    """The generator's PCs (computed in span(m, W_in)) equal a PCA of the full N-dim states, up to sign."""
    gains = np.array([1.0, 0.6, 0.2])
    ds = mw.datasets.rnn_gain_modulation("resampled0a", gains=gains, n_trajectories=4, seed=1)
    net = mw.datasets.load_rnn("resampled0a")
    inputs = np.repeat(np.stack([rnn.dms_input("A", "A", g) for g in gains]), 4, axis=0)
    states, _, _ = net.simulate(inputs, net.noise_std, rnn._rng(1, "resampled0a"))
    kept = states[:, rnn.DROP_STEPS:275].reshape(-1, 500)
    centred = kept - kept.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    ratio = sv[:3] ** 2 / np.sum(sv**2)
    # equal up to the small covariance between S and the orthogonal noise (which a full PCA can use)
    np.testing.assert_allclose(ds["explained_variance_ratio"].values[0], ratio, rtol=2e-3)
    pcs = centred @ vt[:3].T  # (trial * step, 3), trials in gain-major order like the generator
    stim = ds.isel(sample=ds["condition"].values == "resampled0a|g=1.000|stimulated")
    first = (stim["trial"].values == 0)
    rows = ((stim["time"].values[first] / rnn.DT).round().astype(int) - rnn.DROP_STEPS)
    mine = stim["x"].values[first]
    theirs = pcs[rows]
    signs = np.sign(np.sum(mine * theirs, axis=0))
    err = np.abs(mine - theirs * signs).max() / np.abs(theirs).max()
    assert err < 2e-3, err


def test_accuracy_falls_as_gain_goes_to_zero():
    ds = mw.datasets.rnn_gain_modulation(["trained0", "trained1"], gains=[1.0, 0.3, 0.0], n_trajectories=40)
    acc = ds["accuracy"].values
    assert np.all(acc[:, 0] >= 0.95)
    assert np.all(acc[:, 2] <= 0.75)
    assert np.all(acc[:, 0] > acc[:, 2] + 0.25)


def test_without_noise_or_input_the_network_stays_at_rest():
    ds = mw.datasets.rnn_gain_modulation("trained0", gains=[0.0], n_trajectories=2, noise_std=0.0)
    np.testing.assert_array_equal(ds["v"].values, 0.0)
    np.testing.assert_array_equal(ds["decision_output"].values, 0.0)
    assert ds["accuracy"].values.item() == 0.0  # output 0 is not a "match" answer
    np.testing.assert_array_equal(ds["explained_variance_ratio"].values, 0.0)


def test_dms_input_puts_the_gain_on_the_stimulus_channel():
    u = rnn.dms_input("A", "B", 0.25)
    epochs = rnn.epoch_of_step()
    assert u.shape == (275, 2) and epochs.size == 275
    np.testing.assert_array_equal(u[epochs == "stimulus1"], [[0.25, 0.0]] * 25)
    np.testing.assert_array_equal(u[epochs == "stimulus2"], [[0.0, 0.25]] * 25)
    assert np.all(u[~np.isin(epochs, rnn.STIMULATED_EPOCHS)] == 0.0)
    assert (epochs == "delay").sum() == 150 and (epochs == "decision").sum() == 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"networks": "trained9"}, "networks must be"),
        ({"networks": ["trained0", "trained0"]}, "networks must be"),
        ({"networks": []}, "networks must be"),
        ({"networks": 3}, "networks must be"),
        ({"gains": ["a", "b"]}, "gains must be a non-empty"),
        ({"gains": []}, "gains must be a non-empty"),
        ({"gains": [1.0, -0.1]}, "gains must be a non-empty"),
        ({"gains": [0.5, 0.5001]}, "differ by at least 0.001"),
        ({"n_trajectories": 0}, "n_trajectories must be an integer >= 1"),
        ({"n_trajectories": 2.5}, "n_trajectories must be an integer"),
        ({"n_components": 5}, r"n_components must be an integer in \[1, 4\]"),
        ({"drop_steps": 25}, r"drop_steps must be an integer in \[0, 24\]"),
        ({"noise_std": -0.1}, "noise_std must be a finite number >= 0"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(MarbleDataError, match=message):
        mw.datasets.rnn_gain_modulation(**{"networks": "trained0", "n_trajectories": 1, **kwargs})


def test_bad_network_name_and_stimulus():
    with pytest.raises(MarbleDataError, match="unknown network 'nope'"):
        mw.datasets.load_rnn("nope")
    with pytest.raises(MarbleDataError, match="stim2 must be 'A' or 'B'"):
        rnn.dms_input("A", "C")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:graph of condition:UserWarning")  # the two stimulus epochs are apart
def test_marble_orders_one_network_s_stimulated_fields_by_gain():
    """End to end at small settings: MDS axis 1 of MARBLE's OT distances follows the gain."""
    from scipy.stats import spearmanr

    from marble_widgets import MARBLE
    from marble_widgets.analysis import distances, mds

    gains = np.linspace(1.0, 0.0, 8)
    ds = mw.datasets.rnn_gain_modulation("trained0", gains=gains, n_trajectories=8, seed=0)
    stim = ds.isel(sample=ds["stimulated"].values)
    model = MARBLE(order=2, k=15, epochs=15, hidden_channels=(64,), out_dim=5, diffusion=False, patience=None,
                   seed=0, verbose=False)
    emb = model.fit_transform(stim)
    dist = distances(emb, by="condition", method="exact", max_points=200, seed=0)
    axis = mds(dist, 1, seed=0).values[:, 0]
    gain = np.array([float(str(c).split("|")[1][2:]) for c in dist["condition"].values])
    assert abs(spearmanr(axis, gain)[0]) >= 0.85  # measured 0.93; a random order of 8 reaches 0.85 with p < 0.02
