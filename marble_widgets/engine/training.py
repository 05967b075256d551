"""Unsupervised contrastive training of the MARBLE network on node minibatches (spec §10, §11).

One ``numpy.random.Generator`` seeded from ``seed`` drives the node split, the epoch shuffles
and the positive/negative sampling; torch's own RNG (initialisation, dropout) is seeded by the
caller. Positives are random graph neighbours and never the node itself (§14 item 4);
negatives are uniform over all nodes. The best-validation state is kept in memory (§14 item 11).
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from marble_widgets.engine.loss import contrastive_loss
from marble_widgets.engine.network import FeatureSource, MarbleNetwork

#: callback(info) -> True stops training; info keys listed in docs/design.md
Callback = Callable[[dict], "bool | None"]


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
) -> torch.Tensor:
    """Contrastive loss of one minibatch: embed anchors, positives and negatives together."""
    pos = sample_positives(anchors, *adjacency, rng)
    neg = sample_negatives(len(anchors), n_nodes, rng)
    index = torch.as_tensor(np.concatenate([anchors, pos, neg]), device=device)
    diffusion = network.diffusion
    z = network(source.rows(index, diffusion), source.pos(index))
    za, zp, zn = z.split(len(anchors))
    return contrastive_loss(za, zp, zn)


def _train_epoch(network, optimizer, source, split, adjacency, n_nodes, batch_size, rng, device) -> float:
    """One pass over the shuffled training nodes; returns the mean (size-weighted) loss."""
    network.train()
    order = rng.permutation(split)
    total = 0.0
    with source.cached(network.diffusion, train=True):
        for start in range(0, len(order), batch_size):
            anchors = order[start:start + batch_size]
            if len(anchors) < 2 and len(order) > 1:
                continue  # BatchNorm needs more than one row per channel (3 rows here) - skip a stub
            optimizer.zero_grad(set_to_none=True)
            loss = batch_loss(network, source, anchors, adjacency, n_nodes, rng, device)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    "training loss became non-finite (NaN/inf). Lower lr, check the flow field for "
                    "extreme values, or disable diffusion."
                )
            loss.backward()
            optimizer.step()
            network.clamp_time()
            total += float(loss.detach()) * len(anchors)
        optimizer.zero_grad(set_to_none=True)
    if any(p.grad is not None for p in network.parameters()):  # epoch-cached source: step the diffusion time
        optimizer.step()
        network.clamp_time()
    return total / max(len(order), 1)


@torch.no_grad()
def _val_loss(network, source, split, adjacency, n_nodes, batch_size, rng, device) -> float:
    """Validation loss in eval mode on the same positives/negatives every epoch.

    Why: redrawing them each epoch makes the loss noise (about 0.02 on the rat) larger than the
    epoch-to-epoch change, so the best-validation checkpoint would be picked by chance.
    ``rng`` is a generator fixed per call (see ``_train``).
    """
    network.eval()
    total = 0.0
    step = max(batch_size, 4096)
    with source.cached(network.diffusion, train=False):
        for start in range(0, len(split), step):
            anchors = split[start:start + step]
            total += float(batch_loss(network, source, anchors, adjacency, n_nodes, rng, device)) * len(anchors)
    return total / max(len(split), 1)


def train_network(
    network: MarbleNetwork,
    source: FeatureSource,
    edge_index: np.ndarray,
    n_nodes: int,
    *,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 0.01,
    momentum: float = 0.9,
    patience: int | None = 20,
    seed: int = 0,
    device: str | torch.device = "cpu",
    verbose: bool = True,
    callback: Callback | None = None,
) -> TrainResult:
    """Train ``network`` in place with SGD + momentum and ReduceLROnPlateau on the training loss.

    Why: MARBLE's unsupervised objective (§10) with the reference's optimiser (§11), plus an
    in-memory best-validation checkpoint and early stopping after ``patience`` epochs without
    improvement (None: never). ``callback(info)`` runs after every epoch; True stops.
    At the end the network holds the best-validation state, in eval mode.
    """
    device = torch.device(device)
    with _cpu_threads(1 if device.type == "cpu" else None):
        return _train(network, source, edge_index, n_nodes, epochs, batch_size, lr, momentum,
                      patience, seed, device, verbose, callback)


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


def _train(network, source, edge_index, n_nodes, epochs, batch_size, lr, momentum, patience,
           seed, device, verbose, callback) -> TrainResult:
    """Body of :func:`train_network` (same arguments)."""
    rng = np.random.default_rng(seed)
    network.clamp_time()
    split = split_nodes(n_nodes, rng)
    adjacency = neighbour_lists(edge_index, n_nodes)
    optimizer = torch.optim.SGD(network.parameters(), lr=lr, momentum=momentum)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    result = TrainResult(history={k: [] for k in ("train_loss", "val_loss", "lr", "diffusion_time")}, split=split)
    best, best_state, wait = math.inf, copy.deepcopy(network.state_dict()), 0
    t0 = time.perf_counter()
    bar = tqdm(range(epochs), disable=not verbose, desc="MARBLE", unit="epoch")
    common = (adjacency, n_nodes, batch_size, rng, device)
    for epoch in bar:
        current_lr = optimizer.param_groups[0]["lr"]
        train = _train_epoch(network, optimizer, source, split["train"], *common)
        val = _val_loss(network, source, split["val"], adjacency, n_nodes, batch_size,
                        np.random.default_rng([seed, 1]), device)
        scheduler.step(train)
        info = {
            "epoch": epoch, "n_epochs": epochs, "train_loss": train, "val_loss": val,
            "lr": current_lr, "diffusion_time": network.diffusion_time,
            "elapsed": time.perf_counter() - t0,
        }
        for key in result.history:
            result.history[key].append(info[key])
        if val < best:
            best, best_state, wait, result.best_epoch = val, copy.deepcopy(network.state_dict()), 0, epoch
        else:
            wait += 1
        bar.set_postfix(train=f"{train:.4f}", val=f"{val:.4f}")
        if callback is not None and callback(dict(info)) is True:
            result.stopped_early = True
            break
        if patience is not None and wait >= patience:
            result.stopped_early = True
            break
    bar.close()
    network.load_state_dict(best_state)
    network.eval()
    return result
