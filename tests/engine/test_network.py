"""The network: MLP layout (torch_geometric's MLP) and model files saved with the older layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import marble_widgets as mw
from marble_widgets.engine.network import MarbleNetwork, NetworkSpec, make_mlp
from marble_widgets.estimator import MARBLE

FILES = Path(__file__).parent / "files"


def test_mlp_layout_is_linear_batchnorm_relu_dropout_with_a_plain_last_layer():
    torch.manual_seed(0)
    mlp = make_mlp([4, 8, 3], batch_norm=True, dropout=0.0, bias=True).eval()
    x = torch.randn(5, 4)
    bn = mlp.norms[0].module
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    h = torch.relu(bn(x @ mlp.lins[0].weight.T + mlp.lins[0].bias))
    expected = h @ mlp.lins[1].weight.T + mlp.lins[1].bias
    torch.testing.assert_close(mlp(x), expected)
    plain = make_mlp([4, 8, 3], batch_norm=False, dropout=0.0, bias=False)
    assert sorted(plain.state_dict()) == ["lins.0.weight", "lins.1.weight"]


def test_dropout_only_in_hidden_layers():
    torch.manual_seed(0)
    mlp = make_mlp([6, 50, 2], batch_norm=False, dropout=0.5, bias=True).train()
    assert mlp.dropout == [0.5, 0.0]
    x = torch.randn(400, 6)
    assert not torch.equal(mlp(x), mlp(x))  # random masks in training
    mlp.eval()
    torch.testing.assert_close(mlp(x), mlp(x))


@pytest.mark.parametrize("name, kind", [("model_format2", "batch norm, dropout, two hidden layers"),
                                        ("model_format2_plain", "no batch norm, diffusion")])
def test_a_model_file_of_format_2_still_loads_and_embeds_the_same(name, kind):
    # written by tests/engine/files/make_format2_files.py with the nn.Sequential MLP (format 2)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (90, 2))
    ff = mw.flow_field_from_arrays(x, np.c_[-x[:, 1], x[:, 0]] + 0.1 * x)
    model = MARBLE.load(FILES / f"{name}.pt")
    expected = np.load(FILES / f"{name}_embedding.npy")
    np.testing.assert_allclose(model.transform(ff).values, expected, rtol=1e-5, atol=1e-5)


def test_spec_sizes_come_from_feature_count():
    spec = NetworkSpec(n_signal=3, n_directions=2, order=2, include_self=False, n_positions=2,
                       inner_product_features=True)
    assert spec.n_linear == 3 * (2 + 4) and spec.n_channels == 6 and spec.n_in == 6 + 2
    net = MarbleNetwork(spec)
    assert net.mlp.lins[0].in_channels == 8
