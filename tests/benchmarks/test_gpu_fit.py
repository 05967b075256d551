"""``benchmarks/gpu_fit.py`` runs its CPU row and names why a CUDA row is missing (issue 15).

Why: the GPU timing can only be taken where a GPU is lent; the script must then work in one call,
so its CPU path (the baseline row) and its no-CUDA message are checked here on every machine.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu_fit  # noqa: E402


def test_cpu_row_and_the_missing_cuda_row_are_reported(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine measures the CUDA row instead")
    gpu_fit.main(["--n", "600", "--epochs", "2", "--devices", "cpu", "cuda", "--batch-sizes", "64", "128",
                  "--no-json"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("cpu ")]
    assert [row[1] for row in rows] == ["64", "128"]  # one row per batch size
    # fit seconds; each embedding compared with the CPU fit of its own batch size (itself): identical
    assert all(float(row[2]) > 0 and float(row[-1]) == 0.0 for row in rows)
    assert "cuda: not measured: torch.cuda.is_available() is False" in out
