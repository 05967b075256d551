"""device="cuda": the fit and transform run on the GPU, agree with the CPU and round-trip through save/load.

Skipped where torch sees no CUDA GPU (CI, Binder). Run on a GPU machine with
``python -m pytest tests/test_gpu.py``; ``benchmarks/gpu_fit.py`` times the same path at 10^5 points.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from marble_widgets import MARBLE, MARBLEEnsemble
from marble_widgets.data.containers import flow_field_from_arrays

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

#: deterministic settings (no dropout) so the CPU and GPU fits differ only by summation order
PARAMS = dict(k=10, order=2, epochs=4, hidden_channels=(32,), out_dim=3, dropout=0.0, seed=3, verbose=False)


def _sphere_flow(n: int = 400, seed: int = 0) -> xr.Dataset:
    """A rotation field on the unit sphere, two conditions with different speeds."""
    rng = np.random.default_rng(seed)
    xs, vs = [], []
    for speed in (1.0, 2.0):
        x = rng.normal(size=(n, 3))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        xs.append(x)
        vs.append(speed * np.cross([0.0, 0.0, 1.0], x))
    return flow_field_from_arrays(xs, vs, conditions=["slow", "fast"])


@pytest.fixture(scope="module")
def flow() -> xr.Dataset:
    return _sphere_flow()


@pytest.fixture(scope="module")
def cuda_model(flow) -> MARBLE:
    return MARBLE(device="cuda", **PARAMS).fit(flow)


def test_the_network_and_its_training_live_on_the_gpu(cuda_model):
    assert {p.device.type for p in cuda_model.network_.parameters()} == {"cuda"}
    assert np.isfinite(cuda_model.loss_history_["train_loss"].values).all()


def test_gpu_embedding_matches_the_cpu_fit(flow, cuda_model):
    cpu = MARBLE(device="cpu", **PARAMS).fit(flow)
    z_gpu, z_cpu = cuda_model.transform(flow).values, cpu.transform(flow).values
    assert z_gpu.shape == z_cpu.shape == (800, 3)
    # same seed, same minibatches; only the order of floating-point sums differs between devices
    assert np.abs(z_gpu - z_cpu).max() < 1e-3
    np.testing.assert_allclose(cuda_model.loss_history_["train_loss"].values, cpu.loss_history_["train_loss"].values,
                               rtol=1e-4)


def test_a_gpu_model_saved_loads_on_the_cpu_with_the_same_embedding(flow, cuda_model, tmp_path):
    path = cuda_model.save(tmp_path / "gpu.pt")
    on_cpu = MARBLE.load(path, device="cpu")
    assert {p.device.type for p in on_cpu.network_.parameters()} == {"cpu"}
    np.testing.assert_allclose(on_cpu.transform(flow).values, cuda_model.transform(flow).values, atol=1e-5)
    back_on_gpu = MARBLE.load(path)  # the saved device is kept when none is asked for
    assert back_on_gpu.device == "cuda"
    np.testing.assert_allclose(back_on_gpu.transform(flow).values, cuda_model.transform(flow).values,
                               atol=1e-6)


def test_an_ensemble_fits_on_the_gpu_and_is_reproducible(flow):
    first = MARBLEEnsemble(MARBLE(device="cuda", **PARAMS), n_members=2).fit(flow).transform(flow).values
    again = MARBLEEnsemble(MARBLE(device="cuda", **PARAMS), n_members=2).fit(flow).transform(flow).values
    assert first.shape[0] == 800 and np.isfinite(first).all()
    assert np.abs(first - again).max() < 1e-4  # CUDA scatter sums may differ in the last bits
