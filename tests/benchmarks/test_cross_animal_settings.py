"""The cross-animal benchmark's second setting takes only MARBLE settings from the decoding search."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import cross_animal as C  # noqa: E402


def test_tuned_overrides_keep_the_protocols_input_and_3d_output():
    chosen = json.loads((Path(C.__file__).parent / "results" / "fidelity_tuning.json").read_text())["chosen"]
    out = C.tuned_overrides()
    assert set(out) <= set(C.TUNABLE) and "out_dim" not in out and "n_components" not in out
    assert out["batch_size"] == chosen["batch_size"] and out["k"] == chosen["k"]
    assert out["hidden_channels"] == tuple(chosen["hidden_channels"])
