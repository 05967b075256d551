"""Fixtures for the widget tests: small synthetic results built in code (see toy_results)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "plotting"))
from toy_results import emb, ff, ins, rec  # noqa: E402,F401  (fixtures)
