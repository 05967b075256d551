"""MARBLE's unsupervised contrastive loss (GraphSAGE style, docs/spec.md §10), with an optional temperature."""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F


def check_temperature(temperature: float) -> float:
    """``temperature`` as a positive finite float, or a ValueError saying what to pass."""
    is_number = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    value = float(temperature) if is_number else math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"temperature must be a positive number (1.0 = the reference's loss; e.g. 0.1 with "
            f"emb_norm=True); got {temperature!r}."
        )
    return value


def contrastive_loss(
    z_anchor: torch.Tensor,
    z_positive: torch.Tensor,
    z_negative: torch.Tensor,
    z_masked: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Pull graph neighbours together and push random nodes apart; returns a scalar.

    ``L = -mean_i log s(z_i . z_j(i) / T) - mean_i log s(-z_i . z_k(i) / T) [+ s(sum_m |z_m - mean z_M|) - 1/2]``
    with ``s`` the logistic sigmoid, ``j(i)`` a random neighbour, ``k(i)`` a random node and
    ``T`` the temperature (1 = the reference). With unit-norm embeddings (``emb_norm``) the dot
    products lie in [-1, 1], so at ``T = 1`` the loss cannot fall below ``2 log(1 + e^-1)``
    (~0.63) and saturates; ``T < 1`` widens the logits to ``[-1/T, 1/T]`` (InfoNCE-style). Random
    negatives cannot all point away from the anchor (their mean dot product is ``|mean z|^2 >= 0``),
    so in few dimensions a small ``T`` raises the negative term instead (rat, 3-D, ``T = 0.1``:
    the loss stayed above ``2 log 2``; see benchmarks/seed_stability.py).
    The bracket is the reference's optional mask term on the embeddings ``z_masked`` (M, E) of
    nodes that should coincide; it is omitted when ``z_masked`` is None or empty.
    At ``z = 0`` the loss is ``2 log 2``. Inputs: ``(B, E)`` each.
    """
    if z_anchor.shape != z_positive.shape or z_anchor.shape != z_negative.shape:
        raise ValueError(
            "z_anchor, z_positive and z_negative must have the same (B, E) shape; got "
            f"{tuple(z_anchor.shape)}, {tuple(z_positive.shape)}, {tuple(z_negative.shape)}."
        )
    scale = 1.0 / check_temperature(temperature)
    pos = (z_anchor * z_positive).sum(dim=-1) * scale
    neg = (z_anchor * z_negative).sum(dim=-1) * scale
    loss = -F.logsigmoid(pos).mean() - F.logsigmoid(-neg).mean()
    if z_masked is not None and z_masked.shape[0] > 0:
        spread = (z_masked - z_masked.mean(dim=0, keepdim=True)).norm(dim=-1).sum()
        loss = loss + torch.sigmoid(spread) - 0.5
    return loss
