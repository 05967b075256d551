"""The Binder requirement set resolves: checked offline against this (tested) environment.

Binder installs ``binder/requirements.txt`` then runs ``binder/postBuild``. Without network we
cannot run pip's resolver, so we check what it would need: every pinned requirement is
installed here at a version its specifier accepts, torch is the CPU build from PyTorch's CPU
index, no compiled PyG extension is requested, and every core dependency of pyproject.toml is
covered by a Binder pin that also satisfies pyproject's own range.
"""
from __future__ import annotations

import importlib.metadata as metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
COMPILED_PYG = {"torch-scatter", "torch-sparse", "torch-cluster", "torch-spline-conv", "pyg-lib"}


def parse_requirements(path: Path) -> tuple[list[Requirement], list[str]]:
    """Requirements and pip options (lines starting with ``-``) of a requirements file."""
    reqs, options = [], []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        (options if line.startswith("-") else reqs).append(line if line.startswith("-") else Requirement(line))
    return reqs, options


@pytest.fixture(scope="module")
def binder() -> tuple[dict[str, Requirement], list[str]]:
    reqs, options = parse_requirements(BINDER / "requirements.txt")
    names = [canonicalize_name(r.name) for r in reqs]
    assert len(names) == len(set(names)), f"duplicate requirements: {sorted(names)}"
    return dict(zip(names, reqs)), options


def test_parse_requirements_reads_options_and_pins(tmp_path: Path):
    f = tmp_path / "r.txt"
    f.write_text("# comment\n--extra-index-url https://example.org/simple\nnumpy==2.0  # pinned\n\nscipy>=1\n")
    reqs, options = parse_requirements(f)
    assert options == ["--extra-index-url https://example.org/simple"]
    assert [str(r) for r in reqs] == ["numpy==2.0", "scipy>=1"]


def test_every_binder_requirement_is_installed_at_a_compatible_version(binder):
    reqs, _ = binder
    problems = []
    for name, req in reqs.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: not installed")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            problems.append(f"{name}: installed {installed}, binder asks {req.specifier}")
    assert problems == [], "binder/requirements.txt does not match the tested environment: " + "; ".join(problems)


def test_torch_is_pinned_to_the_cpu_build(binder):
    reqs, options = binder
    assert f"--extra-index-url {CPU_INDEX}" in options
    spec = list(reqs["torch"].specifier)
    assert len(spec) == 1 and spec[0].operator == "==", f"torch must be pinned exactly; got {reqs['torch']}"
    pinned = Version(spec[0].version)
    assert pinned.local == "cpu", f"pin the CPU build (torch==X+cpu); got {pinned}"
    assert pinned.public == "2.13.0"
    assert Version(metadata.version("torch")).public == pinned.public


def test_no_compiled_pyg_extensions(binder):
    reqs, _ = binder
    assert COMPILED_PYG.isdisjoint(reqs), f"compiled PyG extras requested: {sorted(COMPILED_PYG & set(reqs))}"
    assert "torch-geometric" in reqs


def test_pyproject_core_dependencies_are_covered(binder):
    reqs, _ = binder
    core = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    problems = []
    for line in core:
        dep = Requirement(line)
        name = canonicalize_name(dep.name)
        if name not in reqs:
            problems.append(f"{name}: missing from binder/requirements.txt")
            continue
        pins = [s.version for s in reqs[name].specifier if s.operator == "=="]
        if pins and not dep.specifier.contains(pins[0], prereleases=True):
            problems.append(f"{name}: binder pins {pins[0]} outside pyproject's {dep.specifier}")
    assert problems == [], "; ".join(problems)


def test_binder_runs_jupyterlab_and_installs_the_package_without_deps(binder):
    reqs, _ = binder
    assert {"jupyterlab", "ipykernel", "ipywidgets"} <= set(reqs)
    post = (BINDER / "postBuild").read_text(encoding="utf-8")
    assert post.startswith("#!/bin/bash") and (BINDER / "postBuild").stat().st_mode & 0o111
    assert "pip install --no-deps -e ." in post
    assert "/lab/tree/notebooks/01_quickstart.ipynb" in post
    assert (ROOT / "notebooks" / "01_quickstart.ipynb").is_file()
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
