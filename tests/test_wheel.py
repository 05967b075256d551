"""The package works installed from a built wheel, outside the checkout, not only as an editable.

The wheel is built from the tracked files only (as a fresh clone has them), installed into a
separate folder, and used from a working directory outside the repository.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout: cannot tell which files a clone has")
    return out.stdout.split()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the tracked files (no .venv, no build leftovers)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for rel in _tracked():
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "-w", str(base / "dist"), str(src)], cwd=base)
    (found,) = (base / "dist").glob("marble_widgets-*.whl")
    return found


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
         cwd=target)
    return target


def _outside_env(site: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    env.pop("PYTHONSAFEPATH", None)
    return env


def test_wheel_carries_every_package_file_and_the_licences(wheel):
    package_files = {p for p in _tracked() if p.startswith("marble_widgets/") and not p.endswith(".pyc")}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert package_files - names == set(), "tracked package files missing from the wheel"
    assert "marble_widgets/datasets/files/LICENSES.md" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


def test_installed_copy_loads_every_bundled_dataset(site, tmp_path):
    code = (
        "import marble_widgets as mw, marble_widgets.datasets as ds\n"
        f"assert mw.__file__.startswith({str(site)!r}), mw.__file__\n"
        "rat = ds.rat_hippocampus(); maze = ds.mc_maze_small(); track = ds.linear_track()\n"
        "jenkins = mw.read_nwb(ds.jenkins_nwb_path(), bin_size=0.02)\n"
        "track_nwb = mw.read_nwb(ds.linear_track_nwb_path(), bin_size=0.02)\n"
        "assert 'Grosmark' in ds.licences()\n"
        "print(rat.sizes['time'], maze.sizes['trial'], track.sizes['unit'], jenkins.sizes['unit'],"
        " track_nwb.sizes['unit'])\n"
    )
    sizes = [int(s) for s in _run([sys.executable, "-c", code], cwd=tmp_path, env=_outside_env(site)).split()]
    import marble_widgets as mw
    import marble_widgets.datasets as ds

    expected = [ds.rat_hippocampus().sizes["time"], ds.mc_maze_small().sizes["trial"],
                ds.linear_track().sizes["unit"], mw.read_nwb(ds.jenkins_nwb_path(), bin_size=0.02).sizes["unit"],
                mw.read_nwb(ds.linear_track_nwb_path(), bin_size=0.02).sizes["unit"]]
    assert sizes == expected


def test_installed_copy_runs_the_demo_outside_the_checkout(site, tmp_path):
    out = tmp_path / "out"
    _run([sys.executable, "-m", "marble_widgets.demo", "--epochs", "2", "--out", str(out)],
         cwd=tmp_path, env=_outside_env(site))
    assert (out / "demo.html").stat().st_size > 100_000
    assert (out / "summary.json").is_file()
