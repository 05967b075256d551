"""Training loop pieces: split, samplers, feature sources, callback and best-state handling."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from marble_widgets.engine.geometry import build_geometry
from marble_widgets.engine.network import (
    DiffusedFeatures,
    MarbleNetwork,
    NetworkSpec,
    StaticFeatures,
    build_feature_source,
)
from marble_widgets.engine.training import (
    EPOCH_KEYS,
    neighbour_lists,
    sample_negatives,
    sample_positives,
    split_nodes,
    train_network,
)


@pytest.fixture(scope="module")
def geometry():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (200, 2))
    v = np.c_[-x[:, 1], x[:, 0]] + 0.2 * rng.normal(size=(200, 2))
    return build_geometry(x, v, np.repeat([0, 1], 100), k=10)


def test_split_is_a_disjoint_80_10_10_cover():
    split = split_nodes(1000, np.random.default_rng(0))
    sizes = {k: len(v) for k, v in split.items()}
    assert sizes == {"train": 800, "val": 100, "test": 100}
    np.testing.assert_array_equal(np.sort(np.concatenate(list(split.values()))), np.arange(1000))
    with pytest.raises(ValueError, match="at least 3 nodes"):
        split_nodes(2, np.random.default_rng(0))


def test_positives_are_neighbours_never_self(geometry):
    indptr, indices = neighbour_lists(geometry.edge_index, geometry.n_nodes)
    anchors = np.repeat(np.arange(geometry.n_nodes), 20)
    pos = sample_positives(anchors, indptr, indices, np.random.default_rng(0))
    assert np.all(pos != anchors)
    edges = set(map(tuple, geometry.edge_index.T))
    assert all((a, p) in edges for a, p in zip(anchors, pos))
    # isolated node 2 in a 3-node graph with one edge: falls back to itself
    ip, ix = neighbour_lists(np.array([[0, 1], [1, 0]]), 3)
    np.testing.assert_array_equal(sample_positives(np.array([0, 1, 2]), ip, ix, np.random.default_rng(0)), [1, 0, 2])
    neg = sample_negatives(5000, 7, np.random.default_rng(0))
    assert set(np.unique(neg)) == set(range(7))


def test_diffused_source_at_time_zero_is_the_static_source(geometry):
    diffused = build_feature_source(geometry, order=2, include_self=True, diffusion=True)
    static = build_feature_source(geometry, order=2, include_self=True, diffusion=False)
    assert isinstance(diffused, DiffusedFeatures) and isinstance(static, StaticFeatures)
    net = MarbleNetwork(NetworkSpec(n_signal=2, n_directions=2, order=2))
    net.diffusion.clamp_()  # t -> 1e-8: diffusion is the identity
    idx = torch.arange(0, 200, 7)
    np.testing.assert_allclose(diffused.rows(idx, net.diffusion).detach(), static.rows(idx, None), atol=1e-5)
    with torch.no_grad():
        net.diffusion.t.fill_(0.4)
    assert np.abs(diffused.rows(idx, net.diffusion).detach().numpy() - static.rows(idx, None).numpy()).max() > 1e-2


@pytest.mark.parametrize("local", [False, True])
def test_every_source_is_read_once_per_epoch_at_one_time(local):
    """One training path: global and local gauges alike, the features are evaluated once for the
    training pass and once for validation per epoch, so t is constant within an epoch."""
    rng = np.random.default_rng(0)
    if local:
        uv = rng.uniform(-1, 1, (150, 2))
        x = np.c_[uv, 0.3 * (uv**2).sum(1)]
        v = np.c_[-uv[:, 1], uv[:, 0], 0.6 * (uv * np.c_[-uv[:, 1], uv[:, 0]]).sum(1)]
    else:
        x = rng.uniform(-1, 1, (150, 2))
        v = np.c_[-x[:, 1], x[:, 0]]
    g = build_geometry(x, v, k=10, local_gauges=local)
    source = build_feature_source(g, order=1, diffusion=True)
    net = MarbleNetwork(NetworkSpec(n_signal=2, n_directions=2, order=1))
    with torch.no_grad():
        net.diffusion.t.fill_(0.3)  # away from the clamp at 0, so every step moves it
    times, full = [], source.full
    source.full = lambda d: times.append(d.time) or full(d)
    result = train_network(net, source, g.edge_index, g.n_nodes, epochs=3, batch_size=16, seed=0, verbose=False)
    assert len(times) == 2 * 3  # one training pass + one validation pass per epoch
    # t steps once, between an epoch's training pass and its validation: validation and the next
    # epoch's training read the time recorded for the epoch
    np.testing.assert_allclose(times[1::2], result.history["diffusion_time"], rtol=1e-7)
    np.testing.assert_allclose(times[2::2], result.history["diffusion_time"][:2], rtol=1e-7)
    assert len(set(times)) == 4  # t0, then one new time per epoch


def test_vector_heat_keeps_a_parallel_field_on_a_plane():
    rng = np.random.default_rng(4)
    uv = rng.uniform(-1, 1, (150, 2))
    q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    x = np.c_[uv, np.zeros(150)] @ q.T
    v = np.tile(np.array([0.3, -0.5, 0.0]) @ q.T, (150, 1))
    g = build_geometry(x, v, k=10, local_gauges=True)
    src = build_feature_source(g, order=1, include_self=True, diffusion=True)
    assert isinstance(src, DiffusedFeatures) and src.norm_basis is not None
    net = MarbleNetwork(NetworkSpec(n_signal=2, n_directions=2, order=1))
    net.diffusion.t.data.fill_(2.0)
    u0 = src.signal(None).numpy()
    np.testing.assert_allclose(src.signal(net.diffusion).detach().numpy(), u0, atol=1e-4)


def _train(geometry, **kwargs):
    source = build_feature_source(geometry, order=1, include_self=True, diffusion=False)
    torch.manual_seed(0)
    net = MarbleNetwork(NetworkSpec(n_signal=2, n_directions=2, order=1, diffusion=False))
    return net, train_network(net, source, geometry.edge_index, geometry.n_nodes, verbose=False, **kwargs)


def test_callback_infos_and_stop(geometry):
    infos = []
    _, result = _train(geometry, epochs=4, callback=infos.append)
    assert [i["epoch"] for i in infos] == [0, 1, 2, 3]
    assert tuple(infos[0]) == EPOCH_KEYS == ("epoch", "n_epochs", "train_loss", "val_loss", "lr", "diffusion_time", "elapsed")
    assert all(i["n_epochs"] == 4 for i in infos)
    assert result.best_epoch == int(np.argmin(result.history["val_loss"]))
    seen = []
    _, result = _train(geometry, epochs=10, callback=lambda info: seen.append(info) or info["epoch"] == 1)
    assert len(seen) == 2 and result.stopped_early and len(result.history["train_loss"]) == 2


def test_early_stopping_with_patience(geometry):
    net, result = _train(geometry, epochs=60, lr=1e-9, patience=2)
    n = len(result.history["val_loss"])
    assert n < 60 and n - 1 - result.best_epoch == 2
    assert not net.training  # left in eval mode with the best state


def test_diffused_source_is_evaluated_once_per_epoch_and_its_time_gradient_is_the_summed_one(geometry):
    graph = build_feature_source(geometry, order=1, include_self=True, diffusion=True)
    net = MarbleNetwork(NetworkSpec(n_signal=2, n_directions=2, order=1))
    with torch.no_grad():
        net.diffusion.t.fill_(0.3)
    batches = [torch.arange(0, 60), torch.arange(60, 140)]
    net.zero_grad()
    for idx in batches:  # per-step full-graph forward: the exact summed gradient
        (graph.rows(idx, net.diffusion) ** 2).sum().backward()
    expected = float(net.diffusion.t.grad)
    calls = []
    full = graph.full
    graph.full = lambda d: calls.append(1) or full(d)
    net.zero_grad()
    with graph.cached(net.diffusion, train=True):
        for idx in batches:
            (graph.rows(idx, net.diffusion) ** 2).sum().backward()
        assert net.diffusion.t.grad is None  # nothing reaches t until the epoch ends
    assert len(calls) == 1
    assert float(net.diffusion.t.grad) == pytest.approx(expected, rel=1e-5)  # float32 sums, any order


def test_row_gradients_equal_autograds_dense_gradient_bit_for_bit_with_repeated_rows():
    from marble_widgets.engine.network import _GatherRows, _RowGradients

    gen = torch.Generator().manual_seed(0)
    values = torch.randn(50, 4, generator=gen)
    steps = [torch.tensor([3, 7, 3, 3, 49, 0]), torch.tensor([7, 7, 10]), torch.tensor([0, 1, 2])]
    weights = [torch.randn(len(idx), 4, generator=gen) for idx in steps]
    leaf = values.clone().requires_grad_(True)
    sink = _RowGradients(values)
    for idx, w in zip(steps, weights):
        (leaf[idx] * w).sum().backward()  # autograd: a dense (50, 4) gradient per step, summed
        (_GatherRows.apply(values.clone().requires_grad_(True), idx, sink) * w).sum().backward()
    assert sink.used and torch.equal(sink.grad, leaf.grad)
    assert torch.equal(sink.grad[3], weights[0][0] + weights[0][2] + weights[0][3])  # untouched by steps 2, 3
    assert not sink.grad[11:49].any()


def test_a_non_finite_loss_stops_training_with_the_fix(geometry):
    graph = build_feature_source(geometry, order=1, include_self=True, diffusion=False)
    net = MarbleNetwork(NetworkSpec(n_signal=2, n_directions=2, order=1, diffusion=False))
    with pytest.raises(FloatingPointError, match="Lower lr"):
        train_network(net, graph, geometry.edge_index, geometry.n_nodes, epochs=3, lr=1e30, seed=0, verbose=False)


def test_training_with_an_epoch_cached_source_learns_the_diffusion_time(geometry):
    graph = build_feature_source(geometry, order=1, include_self=True, diffusion=True)
    net = MarbleNetwork(NetworkSpec(n_signal=2, n_directions=2, order=1))
    t0 = net.diffusion_time
    result = train_network(net, graph, geometry.edge_index, geometry.n_nodes, epochs=4, seed=0, verbose=False)
    assert len(result.history["diffusion_time"]) == 4
    assert net.diffusion_time != pytest.approx(t0, abs=1e-6)


# ------------------------------------------------------------------ state selection, schedules, temperature
class _Counter(torch.nn.Module):
    """A 'network' whose only weight is set by hand, to play a constructed training history."""

    diffusion = None

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))


@pytest.mark.parametrize(
    "selection, first, expected_w, expected_epoch",
    [
        # val loss is lowest at epoch 2 (a noisy early dip), the weights at epoch e are (e, -e)
        ("best_val", 0, 2.0, 2),
        ("last", 0, 5.0, 5),
        ("average", 3, (3 + 4 + 5) / 3, 5),  # mean of the weights of epochs 3, 4, 5
        ("average", 0, 2.5, 5),
    ],
)
def test_state_keeper_picks_what_the_rule_says_on_a_constructed_history(selection, first, expected_w, expected_epoch):
    from marble_widgets.engine.training import _StateKeeper

    net = _Counter()
    keeper = _StateKeeper(net, selection, first_averaged=first)
    waits = []
    for epoch, val in enumerate([1.0, 0.9, 0.5, 0.6, 0.55, 0.7]):
        net.w.data[:] = torch.tensor([epoch, -epoch], dtype=torch.float32)
        waits.append(keeper.update(epoch, val))
    assert waits == [0, 0, 0, 1, 2, 3]  # epochs since the best validation loss (drives patience)
    epoch = keeper.finish(source=None, train_nodes=np.arange(3), device=torch.device("cpu"))
    assert epoch == expected_epoch
    np.testing.assert_allclose(net.w.detach().numpy(), [expected_w, -expected_w], rtol=1e-6)


def test_average_selection_is_the_mean_of_late_states_with_population_batchnorm(geometry):
    source = build_feature_source(geometry, order=1, include_self=True, diffusion=False)
    torch.manual_seed(0)
    net = MarbleNetwork(NetworkSpec(n_signal=2, n_directions=2, order=1, diffusion=False, hidden_channels=(8,)))
    states = []
    result = train_network(net, source, geometry.edge_index, geometry.n_nodes, epochs=6, selection="average",
                           average_from=0.5, patience=None, verbose=False,
                           callback=lambda info: states.append(copy.deepcopy(net.state_dict())))
    assert result.best_epoch == 5 and not net.training
    late = states[3:]  # floor(0.5 * 6) = 3: epochs 3, 4, 5
    for name in ("mlp.lins.0.weight", "mlp.lins.0.bias", "mlp.norms.0.module.weight", "mlp.lins.1.weight"):
        expected = torch.stack([s[name] for s in late]).double().mean(0).float()
        torch.testing.assert_close(net.state_dict()[name], expected, rtol=1e-6, atol=1e-7)
    # BatchNorm statistics: exact mean / unbiased variance of the averaged first layer on the training nodes
    train = torch.as_tensor(result.split["train"])
    hidden = net.mlp.lins[0](source.rows(train, None)).detach()
    norm = net.mlp.norms[0].module
    torch.testing.assert_close(norm.running_mean, hidden.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norm.running_var, hidden.var(0, unbiased=True), rtol=1e-5, atol=1e-6)


def test_last_selection_keeps_the_final_state(geometry):
    states = []
    net, result = _train_with(geometry, states, epochs=4, selection="last", patience=None)
    assert result.best_epoch == 3
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, states[-1][name])


def test_cosine_schedule_anneals_to_zero(geometry):
    _, result = _train(geometry, epochs=5, lr=0.02, lr_schedule="cosine", selection="last", patience=None)
    expected = [0.01 * (1 + math.cos(math.pi * e / 5)) for e in range(5)]
    np.testing.assert_allclose(result.history["lr"], expected, rtol=1e-9, atol=1e-12)


def test_temperature_reaches_the_loss_and_is_deterministic(geometry):
    runs = [_train(geometry, epochs=3, temperature=t, selection="average", patience=None, lr_schedule="cosine")
            for t in (0.2, 0.2, 1.0)]
    (net_a, res_a), (net_b, res_b), (_, res_c) = runs
    for key in ("train_loss", "val_loss", "lr"):  # same seed: identical history and weights
        assert res_a.history[key] == res_b.history[key]
    for name, value in net_a.state_dict().items():
        torch.testing.assert_close(value, net_b.state_dict()[name], rtol=0, atol=0)
    assert res_a.history["train_loss"] != res_c.history["train_loss"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(selection="best"), "selection must be one of"),
        (dict(lr_schedule="step"), "lr_schedule must be one of"),
        (dict(selection="average", patience=None, average_from=1.0), "average_from must be a fraction"),
        (dict(selection="last", patience=5), "set patience=None with selection='last'"),
        (dict(temperature=0.0), "temperature must be a positive number"),
    ],
)
def test_bad_training_options_are_named(geometry, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _train(geometry, epochs=1, **kwargs)


def _train_with(geometry, states, **kwargs):
    """:func:`_train` that also records the state after every epoch."""
    source = build_feature_source(geometry, order=1, include_self=True, diffusion=False)
    torch.manual_seed(0)
    net = MarbleNetwork(NetworkSpec(n_signal=2, n_directions=2, order=1, diffusion=False))
    result = train_network(net, source, geometry.edge_index, geometry.n_nodes, verbose=False,
                           callback=lambda info: states.append(copy.deepcopy(net.state_dict())), **kwargs)
    return net, result


def test_a_shorter_plateau_run_is_a_prefix_of_a_longer_one(geometry):
    # benchmarks/seed_stability.py reads "the state after epoch E" from a run of E epochs
    states = []
    _train_with(geometry, states, epochs=5, selection="last", patience=None)
    net, result = _train(geometry, epochs=3, selection="last", patience=None)
    assert result.best_epoch == 2
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, states[2][name], rtol=0, atol=0)
