"""Strip outputs, execution counts and saved widget state from the tutorial notebooks.

Notebooks are stored without outputs (they are executed in CI instead), so diffs stay readable
and the repository small. ``--check`` only reports notebooks that would change (exit code 1).

Usage: ``python scripts/strip_notebooks.py [--check] [notebooks/*.ipynb ...]``
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled")


def strip(nb: dict) -> dict:
    """Return a copy of a notebook (nbformat 4 JSON) without outputs, counts or widget state."""
    out = json.loads(json.dumps(nb))
    out.get("metadata", {}).pop("widgets", None)
    for cell in out.get("cells", []):
        for key in VOLATILE_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return out


def dumps(nb: dict) -> str:
    """Serialise like Jupyter does (indent 1, keys sorted, trailing newline)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="report, do not rewrite")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    dirty = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        clean = dumps(strip(json.loads(text)))
        if json.loads(clean) != json.loads(text):
            dirty.append(path)
            if not args.check:
                path.write_text(clean, encoding="utf-8")
    verb = "would strip" if args.check else "stripped"
    for path in dirty:
        print(f"{verb} {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
