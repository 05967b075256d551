"""MARBLE's unsupervised contrastive loss (GraphSAGE style, spec §10)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(
    z_anchor: torch.Tensor,
    z_positive: torch.Tensor,
    z_negative: torch.Tensor,
    z_masked: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pull graph neighbours together and push random nodes apart; returns a scalar.

    ``L = -mean_i log s(z_i . z_j(i)) - mean_i log s(-z_i . z_k(i)) [+ s(sum_m |z_m - mean z_M|) - 1/2]``
    with ``s`` the logistic sigmoid, ``j(i)`` a random neighbour and ``k(i)`` a random node.
    The bracket is the reference's optional mask term on the embeddings ``z_masked`` (M, E) of
    nodes that should coincide; it is omitted when ``z_masked`` is None or empty.
    At ``z = 0`` the loss is ``2 log 2``. Inputs: ``(B, E)`` each.
    """
    if z_anchor.shape != z_positive.shape or z_anchor.shape != z_negative.shape:
        raise ValueError(
            "z_anchor, z_positive and z_negative must have the same (B, E) shape; got "
            f"{tuple(z_anchor.shape)}, {tuple(z_positive.shape)}, {tuple(z_negative.shape)}."
        )
    pos = (z_anchor * z_positive).sum(dim=-1)
    neg = (z_anchor * z_negative).sum(dim=-1)
    loss = -F.logsigmoid(pos).mean() - F.logsigmoid(-neg).mean()
    if z_masked is not None and z_masked.shape[0] > 0:
        spread = (z_masked - z_masked.mean(dim=0, keepdim=True)).norm(dim=-1).sum()
        loss = loss + torch.sigmoid(spread) - 0.5
    return loss
