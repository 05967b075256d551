"""Contrastive losses (docs/spec.md §10, and InfoNCE [ours]): analytic values and gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from marble_widgets.engine.loss import contrastive_loss, infonce_loss


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


def test_temperature_divides_the_logits_against_a_numpy_computation():
    rng = np.random.default_rng(0)
    za, zp, zn = (rng.normal(size=(7, 4)) for _ in range(3))
    za, zp, zn = (z / np.linalg.norm(z, axis=1, keepdims=True) for z in (za, zp, zn))  # emb_norm
    for temp in (1.0, 0.3, 0.05):
        pos, neg = (za * zp).sum(1) / temp, (za * zn).sum(1) / temp
        expected = np.mean(np.log1p(np.exp(-pos))) + np.mean(np.log1p(np.exp(neg)))  # -log s(x) = log(1 + e^-x)
        got = contrastive_loss(*(torch.tensor(z, dtype=torch.float64) for z in (za, zp, zn)), temperature=temp)
        assert float(got) == pytest.approx(expected, rel=1e-12)
    # temperature 1 is the reference's loss exactly
    args = [torch.tensor(z, dtype=torch.float64) for z in (za, zp, zn)]
    assert float(contrastive_loss(*args, temperature=1.0)) == float(contrastive_loss(*args))


def test_temperature_uncaps_the_unit_norm_floor():
    # unit vectors: perfect positives (dot 1), perfect negatives (dot -1)
    za = torch.tensor([[1.0, 0.0]])
    floor_t1 = 2 * math.log1p(math.exp(-1.0))  # the saturation level of the reference with emb_norm
    assert float(contrastive_loss(za, za, -za)) == pytest.approx(floor_t1, rel=1e-6)
    assert float(contrastive_loss(za, za, -za, temperature=0.1)) == pytest.approx(2 * math.log1p(math.exp(-10.0)), rel=1e-5)


@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), float("inf"), "0.1", True, None])
def test_bad_temperature_is_named(bad):
    z = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        contrastive_loss(z, z, z, temperature=bad)


def _infonce_numpy(za: np.ndarray, zp: np.ndarray, temp: float) -> float:
    """InfoNCE written out independently: loop over anchors, log-sum-exp by hand."""
    total = 0.0
    for i in range(len(za)):
        a = za[i] / np.linalg.norm(za[i])
        sims = np.array([a @ (p / np.linalg.norm(p)) for p in zp]) / temp
        top = sims.max()
        total += -(sims[i] - top - np.log(np.sum(np.exp(sims - top))))
    return total / len(za)


def test_infonce_against_a_numpy_computation():
    rng = np.random.default_rng(1)
    za, zp = rng.normal(size=(9, 4)), 3.0 * rng.normal(size=(9, 4))  # not unit norm: the loss normalises
    for temp in (1.0, 0.3, 0.05):
        got = infonce_loss(torch.tensor(za), torch.tensor(zp), temperature=temp)
        assert float(got) == pytest.approx(_infonce_numpy(za, zp, temp), rel=1e-12)


def test_infonce_limits_and_gradient():
    # all embeddings equal: the positive is one of B indistinguishable choices -> log B
    z = torch.ones(6, 3, requires_grad=True)
    loss = infonce_loss(z, z, temperature=0.2)
    assert float(loss.detach()) == pytest.approx(math.log(6))
    loss.backward()
    assert torch.isfinite(z.grad).all()
    # anchors on orthogonal axes, each positive its anchor: only the own positive has cosine 1
    eye = torch.eye(3, dtype=torch.float64)
    expected = -math.log(math.exp(1 / 0.1) / (math.exp(1 / 0.1) + 2.0))
    assert float(infonce_loss(eye, eye, temperature=0.1)) == pytest.approx(expected, rel=1e-12)
    # the mask term is added as for the pair loss
    masked = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    extra = 1.0 / (1.0 + math.exp(-5.0)) - 0.5
    assert float(infonce_loss(eye, eye, masked, temperature=0.1)) == pytest.approx(expected + extra, rel=1e-12)


def test_infonce_refuses_bad_shapes_and_temperatures():
    with pytest.raises(ValueError, match="same \\(B, E\\) shape"):
        infonce_loss(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        infonce_loss(torch.ones(2, 2), torch.ones(2, 2), temperature=0.0)
