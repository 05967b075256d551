"""Unsupervised contrastive training of the MARBLE network on node minibatches (docs/spec.md §10, §11).

One ``numpy.random.Generator`` seeded from ``seed`` drives the node split, the epoch shuffles
and the positive/negative sampling; torch's own RNG (initialisation, dropout) is seeded by the
caller. Positives are random graph neighbours and never the node itself (§14 item 4);
negatives are uniform over all nodes (``loss="sigmoid"``, the reference) or the other anchors'
positives (``loss="infonce"``, [ours]; no negatives are drawn). The state returned is chosen by
``selection``: the best-validation state kept in memory (§14 item 11, the reference's rule), the
last state, or the average of the weights over the last epochs (stochastic weight averaging, [ours]).
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from marble_widgets.engine.config import TrainingConfig
from marble_widgets.engine.loss import check_loss, check_temperature, contrastive_loss, infonce_loss
from marble_widgets.engine.config import EPOCH_KEYS, HISTORY_KEYS, EpochInfo  # noqa: F401  (re-exported)
from marble_widgets.engine.network import FeatureSource, MarbleNetwork


#: callback(info) -> True stops training
Callback = Callable[[EpochInfo], "bool | None"]

#: which state training returns (see :func:`train_network`)
SELECTIONS = ("best_val", "last", "average")
#: learning-rate schedules: the reference's ReduceLROnPlateau, or cosine annealing to 0
LR_SCHEDULES = ("plateau", "cosine")


@dataclass
class TrainResult:
    """What training returns: per-epoch history, the best epoch and whether it stopped early."""

    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = -1
    stopped_early: bool = False
    split: dict[str, np.ndarray] = field(default_factory=dict)


def split_nodes(n_nodes: int, rng: np.random.Generator, fractions=(0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """Random node split into train/val/test (80/10/10 like the reference); val, test >= 1 node.

    Why: validation loss picks the best state and drives early stopping.
    """
    if n_nodes < 3:
        raise ValueError(f"need at least 3 nodes to split into train/val/test; got {n_nodes}.")
    perm = rng.permutation(n_nodes)
    n_val = max(1, int(round(fractions[1] * n_nodes)))
    n_test = max(1, int(round(fractions[2] * n_nodes)))
    n_train = n_nodes - n_val - n_test
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train:n_train + n_val]),
        "test": np.sort(perm[n_train + n_val:]),
    }


def neighbour_lists(edge_index: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency (indptr, indices) of an edge list, self-loops dropped."""
    i, j = np.asarray(edge_index)
    keep = i != j
    i, j = i[keep], j[keep]
    order = np.lexsort((j, i))
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.add.at(indptr, i + 1, 1)
    return np.cumsum(indptr), j[order].astype(np.int64)


def sample_positives(
    anchors: np.ndarray, indptr: np.ndarray, indices: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One uniformly random graph neighbour per anchor, never the anchor itself.

    Isolated nodes (no neighbour) get themselves: their positive term is then the anchor's
    own norm, the only choice consistent with "pull towards the neighbourhood".
    """
    start, deg = indptr[anchors], indptr[anchors + 1] - indptr[anchors]
    pick = start + np.floor(rng.random(len(anchors)) * np.maximum(deg, 1)).astype(np.int64)
    return np.where(deg > 0, indices[np.minimum(pick, len(indices) - 1)], anchors)


def sample_negatives(n_anchors: int, n_nodes: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random nodes among all ``n_nodes`` (any condition, any split), like the reference."""
    return rng.integers(0, n_nodes, size=n_anchors)


def batch_loss(
    network: MarbleNetwork,
    source: FeatureSource,
    anchors: np.ndarray,
    adjacency: tuple[np.ndarray, np.ndarray],
    n_nodes: int,
    rng: np.random.Generator,
    device: torch.device,
    temperature: float = 1.0,
    loss: str = "sigmoid",
) -> torch.Tensor:
    """Contrastive loss of one minibatch: embed anchors, positives (and negatives) together.

    ``loss="infonce"`` embeds anchors and positives only: the other anchors' positives are the
    negatives (:func:`~marble_widgets.engine.loss.infonce_loss`).
    """
    pos = sample_positives(anchors, *adjacency, rng)
    if loss == "infonce":
        index = torch.as_tensor(np.concatenate([anchors, pos]), device=device)
        za, zp = network(source.rows(index, network.diffusion), source.pos(index)).split(len(anchors))
        return infonce_loss(za, zp, temperature=temperature)
    neg = sample_negatives(len(anchors), n_nodes, rng)
    index = torch.as_tensor(np.concatenate([anchors, pos, neg]), device=device)
    diffusion = network.diffusion
    z = network(source.rows(index, diffusion), source.pos(index))
    za, zp, zn = z.split(len(anchors))
    return contrastive_loss(za, zp, zn, temperature=temperature)


def _train_epoch(network, optimizer, source, split, adjacency, n_nodes, batch_size, rng, device,
                 temperature=1.0, loss_name="sigmoid") -> float:
    """One pass over the shuffled training nodes; returns the mean (size-weighted) loss.

    The loss is summed on ``device`` (float64, as Python floats would) and read once per epoch:
    reading it every step would make the CPU wait for the GPU at every minibatch.
    """
    network.train()
    order = rng.permutation(split)
    total = torch.zeros((), dtype=torch.float64, device=device)
    with source.cached(network.diffusion, train=True):
        for start in range(0, len(order), batch_size):
            anchors = order[start:start + batch_size]
            if len(anchors) < 2 and len(order) > 1:
                continue  # BatchNorm needs more than one row per channel (3 rows here) - skip a stub
            optimizer.zero_grad(set_to_none=True)
            loss = batch_loss(network, source, anchors, adjacency, n_nodes, rng, device, temperature, loss_name)
            loss.backward()
            optimizer.step()
            network.clamp_time()
            total += loss.detach().double() * len(anchors)
        optimizer.zero_grad(set_to_none=True)
    mean = float(total) / max(len(order), 1)
    if not math.isfinite(mean):
        raise FloatingPointError(
            "training loss became non-finite (NaN/inf). Lower lr, check the flow field for "
            "extreme values, or disable diffusion."
        )
    if any(p.grad is not None for p in network.parameters()):  # the epoch's summed gradient reached t: step it
        optimizer.step()
        network.clamp_time()
    return mean


@torch.no_grad()
def _val_loss(network, source, split, adjacency, n_nodes, batch_size, rng, device, temperature=1.0,
              loss_name="sigmoid") -> float:
    """Validation loss in eval mode on the same positives/negatives every epoch.

    Why: redrawing them each epoch makes the loss noise (about 0.02 on the rat) larger than the
    epoch-to-epoch change, so the best-validation checkpoint would be picked by chance.
    ``rng`` is a generator fixed per call (see ``_train``). InfoNCE is scored on batches of
    ``batch_size`` anchors, as in training (its value depends on the number of negatives).
    """
    network.eval()
    total = 0.0
    step = batch_size if loss_name == "infonce" else max(batch_size, 4096)
    with source.cached(network.diffusion, train=False):
        for start in range(0, len(split), step):
            anchors = split[start:start + step]
            loss = batch_loss(network, source, anchors, adjacency, n_nodes, rng, device, temperature, loss_name)
            total += float(loss) * len(anchors)
    return total / max(len(split), 1)


def train_network(
    network: MarbleNetwork,
    source: FeatureSource,
    edge_index: np.ndarray,
    n_nodes: int,
    config: TrainingConfig | None = None,
    *,
    verbose: bool = True,
    callback: Callback | None = None,
    **settings,
) -> TrainResult:
    """Train ``network`` in place with SGD + momentum; the state kept is chosen by ``selection``.

    Why: MARBLE's unsupervised objective (§10, logits divided by ``temperature``) with the
    reference's optimiser (§11); ``loss="infonce"`` replaces the objective by InfoNCE over the
    minibatch (see :func:`~marble_widgets.engine.loss.infonce_loss`). Settings: ``config``
    (:class:`~marble_widgets.engine.config.TrainingConfig`), whose fields may also be given as
    keywords. ``lr_schedule``: ``"plateau"`` (the reference: ReduceLROnPlateau on the training
    loss) or ``"cosine"`` (annealed from ``lr`` to 0 over ``epochs``, so the last epochs move
    little). ``selection``:

    - ``"best_val"`` - the epoch with the lowest validation loss (the reference's rule), with
      early stopping after ``patience`` epochs without improvement (None: never);
    - ``"last"`` - the state after the last epoch;
    - ``"average"`` - the mean of the weights at the end of every epoch from
      ``floor(average_from * epochs)`` on (stochastic weight averaging), BatchNorm statistics
      then recomputed on the training nodes. ``best_epoch`` is the last epoch in the average.

    ``patience`` must be None unless ``selection="best_val"``. ``callback(info)`` (an
    :class:`EpochInfo`) runs after every epoch; True stops. The features are read once per epoch
    (:meth:`~marble_widgets.engine.network.FeatureSource.cached`): the diffusion time steps once
    per epoch. At the end the network holds the selected state, in eval mode.
    """
    config = replace(config or TrainingConfig(), **settings)
    check_training_options(config.selection, config.lr_schedule, config.average_from, config.patience)
    config = replace(config, temperature=check_temperature(config.temperature), loss=check_loss(config.loss),
                     average_from=float(config.average_from))
    device = torch.device(config.device)
    with _cpu_threads(1 if device.type == "cpu" else None):
        return _train(network, source, edge_index, n_nodes, config, verbose, callback)


def check_training_options(selection: str, lr_schedule: str, average_from: float, patience: int | None) -> None:
    """Raise a ValueError naming a bad ``selection``/``lr_schedule``/``average_from``/``patience`` mix."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}; got {selection!r}.")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got {lr_schedule!r}.")
    if isinstance(average_from, bool) or not isinstance(average_from, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(average_from) < 1.0:
        raise ValueError(
            f"average_from must be a fraction of the epochs in [0, 1) (0.5: average the second half); "
            f"got {average_from!r}."
        )
    if patience is not None and selection != "best_val":
        raise ValueError(
            f"patience={patience!r} stops on the validation loss, which only selection='best_val' uses: "
            f"set patience=None with selection={selection!r}."
        )


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    """Temporarily set torch's intra-op CPU threads (restored afterwards).

    Why: minibatches are a few hundred rows; intra-op threading only adds synchronisation
    (measured 25x slower BatchNorm with 2 threads on a loaded 2-core machine).
    """
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(network, source, edge_index, n_nodes, config: TrainingConfig, verbose: bool,
           callback: Callback | None) -> TrainResult:
    """Body of :func:`train_network` (a checked ``config``)."""
    c = config
    device = torch.device(c.device)
    rng = np.random.default_rng(c.seed)
    network.clamp_time()
    split = split_nodes(n_nodes, rng)
    adjacency = neighbour_lists(edge_index, n_nodes)
    optimizer = torch.optim.SGD(network.parameters(), lr=c.lr, momentum=c.momentum)
    cosine = c.lr_schedule == "cosine"
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.epochs) if cosine
                 else torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer))
    result = TrainResult(history={k: [] for k in HISTORY_KEYS}, split=split)
    keeper = _StateKeeper(network, c.selection, first_averaged=int(math.floor(c.average_from * c.epochs)))
    t0 = time.perf_counter()
    bar = tqdm(range(c.epochs), disable=not verbose, desc="MARBLE", unit="epoch")
    common = (adjacency, n_nodes, c.batch_size, rng, device, c.temperature, c.loss)
    for epoch in bar:
        current_lr = optimizer.param_groups[0]["lr"]
        train = _train_epoch(network, optimizer, source, split["train"], *common)
        val = _val_loss(network, source, split["val"], adjacency, n_nodes, c.batch_size,
                        np.random.default_rng([c.seed, 1]), device, c.temperature, c.loss)
        scheduler.step() if cosine else scheduler.step(train)
        info = EpochInfo(epoch=epoch, n_epochs=c.epochs, train_loss=train, val_loss=val, lr=current_lr,
                         diffusion_time=network.diffusion_time, elapsed=time.perf_counter() - t0)
        for key in result.history:
            result.history[key].append(info[key])
        wait = keeper.update(epoch, val)
        bar.set_postfix(train=f"{train:.4f}", val=f"{val:.4f}")
        if callback is not None and callback(EpochInfo(**info)) is True:
            result.stopped_early = True
            break
        if c.patience is not None and wait >= c.patience:
            result.stopped_early = True
            break
    bar.close()
    result.best_epoch = keeper.finish(source, split["train"], device)
    network.eval()
    return result


class _StateKeeper:
    """Keeps the state ``selection`` asks for while training runs (see :func:`train_network`)."""

    def __init__(self, network: MarbleNetwork, selection: str, first_averaged: int) -> None:
        self.network, self.selection, self.first_averaged = network, selection, first_averaged
        self.best, self.best_epoch, self.wait = math.inf, -1, 0
        self.state = copy.deepcopy(network.state_dict())
        self.sum: dict[str, torch.Tensor] | None = None
        self.count, self.last_epoch = 0, -1

    def update(self, epoch: int, val: float) -> int:
        """Record the end of ``epoch`` (validation loss ``val``); returns epochs since the best."""
        self.last_epoch = epoch
        if val < self.best:
            self.best, self.wait = val, 0
            if self.selection == "best_val":
                self.state, self.best_epoch = copy.deepcopy(self.network.state_dict()), epoch
        else:
            self.wait += 1
        if self.selection == "average" and epoch >= self.first_averaged:
            params = {k: v.detach().double() for k, v in self.network.state_dict().items() if v.is_floating_point()}
            self.sum = params if self.sum is None else {k: self.sum[k] + params[k] for k in params}
            self.count += 1
        return self.wait

    def finish(self, source: FeatureSource, train_nodes: np.ndarray, device: torch.device) -> int:
        """Load the selected state into the network; returns the epoch it stands for."""
        if self.selection == "best_val":
            self.network.load_state_dict(self.state)
            return self.best_epoch
        if self.selection == "average" and self.count > 0:  # (a callback may stop before averaging: last)
            state = self.network.state_dict()
            self.network.load_state_dict({k: (self.sum[k] / self.count).to(v.dtype) if k in self.sum else v
                                          for k, v in state.items()})
            refresh_batchnorm(self.network, source, train_nodes, device)
        return self.last_epoch


@torch.no_grad()
def refresh_batchnorm(network: MarbleNetwork, source: FeatureSource, nodes: np.ndarray,
                      device: torch.device) -> None:
    """Recompute every BatchNorm's running mean/variance from one pass over ``nodes``.

    Why: averaged weights were never run together, so the running statistics collected during
    training do not describe them (the usual SWA step). Exact population statistics of the
    hidden activations of all ``nodes`` (no momentum); a no-op without BatchNorm.
    """
    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or len(nodes) < 2:
        return
    saved = [m.momentum for m in norms]
    network.eval()  # dropout off: only the BatchNorm layers collect statistics
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the forward passes below (here: exactly one)
        m.train()
    with source.cached(network.diffusion, train=False):
        index = torch.as_tensor(np.asarray(nodes), device=device)
        network(source.rows(index, network.diffusion), source.pos(index))
    for m, mom in zip(norms, saved):
        m.momentum = mom
    network.eval()
