"""Contrastive loss (spec §10): analytic values and gradients."""
from __future__ import annotations

import math

import pytest
import torch

from marble_widgets.engine.loss import contrastive_loss


def test_loss_at_zero_embedding_is_two_log_two():
    z = torch.zeros(5, 3, requires_grad=True)
    loss = contrastive_loss(z, z, z)
    assert float(loss.detach()) == pytest.approx(2 * math.log(2))
    loss.backward()
    assert torch.isfinite(z.grad).all()


def test_loss_toy_batch_by_hand():
    za = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    zp = torch.tensor([[2.0, 1.0], [1.0, 1.0]])  # dots 2, 2
    zn = torch.tensor([[-1.0, 0.0], [0.0, 0.5]])  # dots -1, 1

    def log_sig(x):
        return math.log(1.0 / (1.0 + math.exp(-x)))

    expected = -(log_sig(2) + log_sig(2)) / 2 - (log_sig(1) + log_sig(-1)) / 2
    assert float(contrastive_loss(za, zp, zn)) == pytest.approx(expected, rel=1e-6)


def test_mask_term_adds_sigmoid_of_spread_minus_half():
    z = torch.zeros(2, 2)
    masked = torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # mean (1.5, 2), distances 2.5 + 2.5
    extra = 1.0 / (1.0 + math.exp(-5.0)) - 0.5
    assert float(contrastive_loss(z, z, z, masked)) == pytest.approx(2 * math.log(2) + extra, rel=1e-6)
    assert float(contrastive_loss(z, z, z, torch.zeros(0, 2))) == pytest.approx(2 * math.log(2))


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="same \\(B, E\\) shape"):
        contrastive_loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(2, 2))
