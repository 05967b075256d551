"""Installs come from one lock: make, CI and Binder get the versions the last green run tested.

Nothing here compares against "whatever is newest": the lock is the reference, so a new upstream
release cannot break these tests; only an install that did not come from the lock can.
"""
from __future__ import annotations

import importlib.metadata as metadata
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
COMPILED_PYG = {"torch-scatter", "torch-sparse", "torch-cluster", "torch-spline-conv", "pyg-lib"}
LOCKED_EXTRAS = ("lab", "test", "bench", "cluster")
PIN = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9_.-]*)==(\d[^\s\"',;)]*)")
# installed by venv/pip themselves, not by the lock; this package is installed --no-deps on top
NOT_FROM_LOCK = {"pip", "marble-widgets"}


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """name -> pinned version of a pip-compile lock; every requirement must be an exact pin."""
    pins = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{path.name}: not an exact pin: {line}"
        pins[canonicalize_name(req.name)] = spec[0].version
    return pins


def installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = project["dependencies"] + [r for e in LOCKED_EXTRAS for r in project["optional-dependencies"][e]]
    return [Requirement(line) for line in lines]


@pytest.fixture(scope="module")
def lock() -> dict[str, str]:
    return read_lock()


def test_read_lock_rejects_a_range(tmp_path):
    (tmp_path / "r.lock").write_text("numpy==2.0\n    # via scipy\nscipy>=1\n")
    with pytest.raises(AssertionError, match="not an exact pin: scipy>=1"):
        read_lock(tmp_path / "r.lock")


def test_installed_environment_equals_the_lock(lock):
    have = installed()
    problems = [f"{n}: locked {v}, installed {have.get(n, 'nothing')}" for n, v in sorted(lock.items())
                if have.get(n) != v]
    problems += [f"{n}: installed {v}, not in the lock" for n, v in sorted(have.items())
                 if n not in lock and n not in NOT_FROM_LOCK]
    assert problems == [], ("this environment is not the lock; run `make sync` (or `make lock` if "
                            "pyproject.toml changed):\n" + "\n".join(problems))


def test_lock_satisfies_pyproject_and_pyproject_covers_the_lock_roots(lock):
    problems = []
    for req in pyproject_requirements():
        name = canonicalize_name(req.name)
        if name not in lock:
            problems.append(f"{name}: in pyproject.toml but not in the lock (run make lock)")
        elif not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{name}: locked {lock[name]} outside pyproject's {req.specifier}")
    assert problems == [], "\n".join(problems)


def test_installed_versions_are_inside_pyprojects_ranges():
    """The honest ranges users get with `pip install marble_widgets`: the tested versions lie inside."""
    have = installed()
    outside = [f"{r.name} {have[canonicalize_name(r.name)]} not in {r.specifier}" for r in pyproject_requirements()
               if canonicalize_name(r.name) in have
               and not r.specifier.contains(have[canonicalize_name(r.name)], prereleases=True)]
    assert outside == []


def test_no_module_uses_plotly_or_anywidget_internals():
    """The views draw with plotly.js themselves, so plotly/anywidget need no upper bound: keep it so."""
    private = re.compile(r"(plotly|anywidget)(\.\w+)*\._(?!_)\w+|(go|graph_objects)\.FigureWidget|import FigureWidget"
                         r"|plotly\.basewidget")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "marble_widgets").rglob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if private.search(line) and not line.lstrip().startswith("#")]
    assert hits == []
    reqs = {canonicalize_name(r.name): r for r in pyproject_requirements()}
    assert all(s.operator != "<" for name in ("plotly", "anywidget") for s in reqs[name].specifier)


def test_torch_is_locked_as_the_cpu_build_without_compiled_pyg(lock):
    torch = Version(lock["torch"])
    assert torch.local == "cpu", f"lock the CPU build (torch==X+cpu); got {torch}"
    assert not any(name.startswith("nvidia-") for name in lock), "a CUDA build of torch crept into the lock"
    assert COMPILED_PYG.isdisjoint(lock) and "torch-geometric" in lock


def test_binder_installs_the_lock_and_nothing_else():
    lines = [ln.strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines == [f"--extra-index-url {CPU_INDEX}", "-r ../requirements.lock"]
    assert (BINDER / lines[1].split()[1]).resolve() == LOCK


def test_binder_runs_jupyterlab_and_installs_the_package_without_deps(lock):
    assert {"jupyterlab", "ipykernel", "ipywidgets"} <= set(lock)
    post = (BINDER / "postBuild").read_text(encoding="utf-8")
    assert post.startswith("#!/bin/bash") and (BINDER / "postBuild").stat().st_mode & 0o111
    assert "pip install --no-deps -e ." in post
    assert "/lab/tree/notebooks/01_quickstart.ipynb" in post
    assert (ROOT / "notebooks" / "01_quickstart.ipynb").is_file()
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / p for p in out.stdout.split()]


def test_the_lock_is_the_only_list_of_pinned_versions(lock):
    """No file but the lock pins a locked package (the Makefile pins only the resolver itself)."""
    resolver = {"pip", "pip-tools"}
    found = []
    for path in tracked_files():
        if path == LOCK or path.suffix in {".ipynb", ".png", ".nwb", ".h5", ".npz", ".mat", ".json"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for name, version in PIN.findall(text):
            name = canonicalize_name(name)
            if name in lock and not (path.name == "Makefile" and name in resolver) and path != Path(__file__):
                found.append(f"{path.relative_to(ROOT)}: {name}=={version}")
    assert found == [], "pins outside requirements.lock:\n" + "\n".join(found)


def test_make_lock_is_the_command_that_wrote_the_lock():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^lock:", make, re.M) and "pip-compile pyproject.toml" in make
    assert "--output-file requirements.lock" in make
    header = LOCK.read_text().splitlines()[:6]
    assert any("pip-compile" in h and "--extra=cluster" in h and "--extra=lab" in h for h in header)
    assert "-r requirements.lock" in make, "make installs from the lock"
