"""``benchmarks/sessions.py`` keeps one fit run per epoch count side by side (issue 15's speed-up rows)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import sessions  # noqa: E402

KEYS = ("command", "fits", "fit_facts", "load_average_start", "load_average_end")


def _run(epochs: int, speedup: float) -> dict:
    return {"command": f"--epochs {epochs}", "fits": [{"speedup": speedup}], "fit_facts": {"epochs": epochs},
            "load_average_start": [0.1], "load_average_end": [0.2]}


def test_a_file_without_fit_runs_keeps_its_run_under_its_epochs(tmp_path):
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps({"streaming": [], **_run(10, 1.74)}))
    runs = sessions.fit_runs_by_epochs(100, _run(100, 1.9), path)
    assert list(runs) == ["10", "100"]
    assert runs["10"] == _run(10, 1.74) and set(runs["10"]) == set(KEYS)
    assert runs["100"]["fits"][0]["speedup"] == 1.9


def test_a_new_run_replaces_only_its_own_epochs_and_keys_sort_numerically(tmp_path):
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps({"fit_runs": {"10": _run(10, 1.7), "100": _run(100, 1.9)}}))
    runs = sessions.fit_runs_by_epochs(20, _run(20, 1.8), path)
    assert list(runs) == ["10", "20", "100"]
    runs = sessions.fit_runs_by_epochs(10, _run(10, 1.75), path)
    assert runs["10"]["fits"][0]["speedup"] == 1.75 and runs["100"]["fits"][0]["speedup"] == 1.9


def test_no_previous_file_gives_this_run_alone(tmp_path):
    assert sessions.fit_runs_by_epochs(100, _run(100, 1.9), tmp_path / "none.json") == {"100": _run(100, 1.9)}
