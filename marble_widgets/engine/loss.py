"""MARBLE's unsupervised contrastive loss (GraphSAGE style, docs/spec.md §10), with an optional temperature,
and an InfoNCE alternative ([ours]): a softmax over the minibatch's positives."""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F


#: contrastive losses: the reference's per-pair sigmoid loss, or InfoNCE over the minibatch
LOSSES = ("sigmoid", "infonce")


def check_loss(loss: str) -> str:
    """``loss`` if it names a known contrastive loss, else a ValueError listing them."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(
            f"loss must be one of {LOSSES} ('sigmoid': the paper's pair loss; 'infonce': softmax over "
            f"the minibatch, use with temperature ~0.1-0.5); got {loss!r}."
        )
    return loss


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
    return _with_mask_term(loss, z_masked)


def infonce_loss(
    z_anchor: torch.Tensor,
    z_positive: torch.Tensor,
    z_masked: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """InfoNCE (as in CEBRA): each anchor must pick its own positive among the batch's positives.

    ``L = -mean_i log( exp(c_ii / T) / sum_j exp(c_ij / T) )`` with ``c_ij`` the cosine similarity
    of anchor ``i`` and positive ``j`` (embeddings L2-normalised here, whatever ``emb_norm``) and
    ``T`` the temperature; the other anchors' positives are the negatives. Why: the softmax is
    normalised over the negatives, so pushing the *nearest* negatives away lowers the loss even
    when the mean negative cannot point away (few dimensions), unlike the pair loss at small ``T``.
    Its floor with ``B`` anchors is 0 (``T -> 0``, distinct positives); at ``z`` all equal it is
    ``log B``. The bracket term of :func:`contrastive_loss` is added for ``z_masked``.
    Inputs: ``(B, E)`` each, ``B >= 1``.
    """
    if z_anchor.shape != z_positive.shape or z_anchor.ndim != 2:
        raise ValueError(
            "z_anchor and z_positive must have the same (B, E) shape; got "
            f"{tuple(z_anchor.shape)}, {tuple(z_positive.shape)}."
        )
    scale = 1.0 / check_temperature(temperature)
    logits = F.normalize(z_anchor, dim=-1) @ F.normalize(z_positive, dim=-1).T * scale
    target = torch.arange(len(logits), device=logits.device)
    loss = F.cross_entropy(logits, target)
    return _with_mask_term(loss, z_masked)


def _with_mask_term(loss: torch.Tensor, z_masked: torch.Tensor | None) -> torch.Tensor:
    """``loss + s(sum_m |z_m - mean z_M|) - 1/2`` (the reference's mask term); ``loss`` if no mask."""
    if z_masked is None or z_masked.shape[0] == 0:
        return loss
    spread = (z_masked - z_masked.mean(dim=0, keepdim=True)).norm(dim=-1).sum()
    return loss + torch.sigmoid(spread) - 0.5
