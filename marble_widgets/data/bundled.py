"""Loaders of the vendored real recordings (``marble_widgets/datasets/files``) as xarray Datasets.

Tests, notebooks and benchmarks need real data without any network access, so the small openly
licensed recordings ship inside the package and these loaders turn them into the containers of
docs/design.md. Every Dataset returned here is netCDF-safe: string variables are fixed-width
unicode and attrs hold only str/int/float, so ``to_netcdf(engine="h5netcdf")`` round-trips exactly.
"""
from __future__ import annotations

import importlib.resources
import pathlib

import h5py
import numpy as np
import xarray as xr

from marble_widgets.data.errors import MarbleDataError

BUDDY_CITATION = (
    "Grosmark, A. D. & Buzsaki, G. (2016). Diversity in neural firing dynamics supports both rigid and "
    "learned hippocampal sequences. Science 351:1440-1443 (CRCNS hc-11 / DANDI 000044). Binned as CEBRA's "
    "rat hippocampus data set: Schneider, S., Lee, J. H. & Mathis, M. W. (2023). Nature 617:360-368."
)
MC_MAZE_CITATION = (
    "Churchland, M. & Kaufman, M. (2022). MC_Maze_Small, DANDI 000140 (CC-BY-4.0); Pei, F. et al. (2021). "
    "Neural Latents Benchmark '21. NeurIPS Datasets and Benchmarks; Churchland, M. M. et al. (2010). "
    "Neuron 68(3):387-400."
)
LINEAR_TRACK_CITATION = "nelpy example data (Ackermann, E. et al., nelpy), MIT License, Copyright (c) 2017 nelpy."

_MC_BIN = 0.005  # native bin width of the NLB tensors (s)
_MC_WINDOW_START = -0.25  # NLB window: 250 ms before to 450 ms after movement onset
_N_SECTORS = 8


def data_dir() -> pathlib.Path:
    """Folder holding the vendored files, found through the installed package (not the source tree)."""
    return pathlib.Path(str(importlib.resources.files("marble_widgets.datasets") / "files"))


def _vendored(name: str, hint: str = "") -> pathlib.Path:
    """Path of one vendored file; a clear error if it is missing from the installation."""
    path = data_dir() / name
    if not path.is_file():
        raise MarbleDataError(
            f"bundled file {name!r} was not found at {path}. {hint or 'Reinstall marble_widgets with its data files.'}"
        )
    return path


def licences() -> str:
    """Return the licence and attribution text of every bundled recording (LICENSES.md).

    Cite the original authors whenever these data appear in a figure, notebook or paper.
    """
    return _vendored("LICENSES.md").read_text(encoding="utf-8")


def jenkins_nwb_path() -> pathlib.Path:
    """Path of the real DANDI NWB file of monkey Jenkins' MC_Maze_Small test trials (spikes + trials only).

    The test case for "a real NWB file with only spikes and trials" (it has no behaviour).
    Source: Churchland & Kaufman (2022), DANDI 000140, CC-BY-4.0; Pei et al. (2021), NLB'21.
    """
    return _vendored("sub-Jenkins_ses-small_desc-test_ecephys.nwb")


def linear_track_nwb_path() -> pathlib.Path:
    """Path of ``linear_track.nwb``: a rat on a linear track, spikes *and* position in one NWB file.

    Exercises the whole NWB path in the tutorials. Source: nelpy example data (Ackermann et al.,
    MIT License); the NWB file is built in the repo by ``scripts/build_linear_track_nwb.py``.
    """
    return _vendored(
        "linear_track.nwb",
        hint="Build it from the raw files with `python scripts/build_linear_track_nwb.py` and try again.",
    )


def rat_hippocampus() -> xr.Dataset:
    """Load rat "Buddy" (CA1, 48 units, 1.6 m linear track, 25 ms bins) as a continuous recording Dataset.

    The real recording of the CEBRA and MARBLE papers' hippocampus examples, for decoding position.
    Source: Grosmark & Buzsaki (2016), Science 351:1440, as binned by CEBRA (Schneider et al. 2023).

    Returns
    -------
    xr.Dataset
        ``spike_counts`` (time, unit) float32; ``position`` (time,) metres in [0, 1.6];
        ``direction`` (time,) "right"/"left"; bool ``right``/``left`` (time,). ``time`` = bin centres
        (s, from 0.0125); attrs ``bin_size``=0.025, ``source``, ``subject_id``, ``kind``="continuous".
    """
    with np.load(_vendored("buddy.npz")) as npz:
        spikes = np.asarray(npz["spikes"], dtype=np.float32)
        position = np.asarray(npz["position"], dtype=np.float64)
        right = np.asarray(npz["right"], dtype=bool)
        left = np.asarray(npz["left"], dtype=bool)
    bin_size = 0.025
    time = (np.arange(spikes.shape[0]) + 0.5) * bin_size
    direction = np.where(right, "right", "left").astype("<U5")
    ds = xr.Dataset(
        {
            "spike_counts": (("time", "unit"), spikes),
            "position": ("time", position, {"units": "m"}),
            "direction": ("time", direction),
            "right": ("time", right),
            "left": ("time", left),
        },
        coords={"time": ("time", time, {"units": "s"}), "unit": np.arange(spikes.shape[1], dtype=np.int64)},
    )
    ds.attrs.update(
        bin_size=bin_size,
        source="rat_hippocampus (Buddy)",
        identifier="buddy",
        session_id="buddy",
        subject_id="Buddy",
        kind="continuous",
        citation=BUDDY_CITATION,
    )
    return ds


def _rebin_factor(bin_size: float) -> int:
    """Number of native 5 ms bins per requested bin; raise unless ``bin_size`` is a positive multiple of 5 ms."""
    if isinstance(bin_size, bool) or not isinstance(bin_size, (int, float, np.floating, np.integer)):
        raise TypeError(f"bin_size must be a number of seconds; got {type(bin_size).__name__}.")
    factor = int(round(float(bin_size) / _MC_BIN))
    if factor < 1 or abs(factor * _MC_BIN - float(bin_size)) > 1e-9:
        raise MarbleDataError(
            f"bin_size must be a positive multiple of 0.005 s (the file's native bins); got {bin_size!r}. "
            "Pass e.g. 0.005, 0.01, 0.02 or 0.05."
        )
    return factor


def _rebin(values: np.ndarray, factor: int, how: str) -> np.ndarray:
    """Merge ``factor`` consecutive bins along axis 1 (sum or mean); a trailing partial bin is dropped."""
    n_new = values.shape[1] // factor
    blocks = values[:, : n_new * factor].reshape(values.shape[0], n_new, factor, *values.shape[2:])
    return blocks.sum(axis=2) if how == "sum" else blocks.mean(axis=2)


def reach_angles(hand_velocity: np.ndarray, dt: float) -> np.ndarray:
    """Reach direction (radians, in (-pi, pi]) of each trial: angle of the integrated velocity end point.

    The NLB file has no condition labels; the end point of ``displacement = sum(v) dt`` gives the
    direction of the reach. ``hand_velocity`` is (trial, time, 2) with x, y last.
    """
    displacement = np.asarray(hand_velocity, dtype=np.float64).sum(axis=1) * dt
    return np.arctan2(displacement[:, 1], displacement[:, 0])


def reach_sectors(angles: np.ndarray) -> np.ndarray:
    """Labels "0deg", "45deg", ... "315deg" of the 45-degree sector (centred on those angles) of each angle."""
    index = np.round(np.degrees(np.asarray(angles, dtype=np.float64)) / 45.0).astype(int) % _N_SECTORS
    return np.array([f"{45 * i}deg" for i in index], dtype="<U6")


def mc_maze_small(bin_size: float = 0.005) -> xr.Dataset:
    """Load monkey Jenkins' MC_Maze_Small training trials (75 trials, 700 ms around movement onset).

    Real trial-aligned motor-cortex data with hand velocity, for reach-direction and velocity decoding.
    Source: Churchland & Kaufman (2022), DANDI 000140 (CC-BY-4.0), NLB'21 (Pei et al. 2021).

    Parameters
    ----------
    bin_size
        Bin width in seconds, a multiple of the native 0.005 s; larger bins sum the counts and
        average the velocity (a trailing partial bin is dropped).

    Returns
    -------
    xr.Dataset
        ``spike_counts`` (trial, time, unit) held-in neurons; ``spike_counts_heldout``
        (trial, time, unit_heldout); ``hand_velocity`` (trial, time, axis=["x","y"]) mm/s;
        per-trial ``reach_angle`` (rad) and ``condition`` ("0deg" ... "315deg"). ``time`` = bin
        centres (s) relative to movement onset; attrs ``kind``="trials", ``align_event``.
    """
    factor = _rebin_factor(bin_size)
    with h5py.File(_vendored("mc_maze_small_full.h5"), "r") as h5:
        heldin = np.asarray(h5["train_spikes_heldin"][()], dtype=np.float32)
        heldout = np.asarray(h5["train_spikes_heldout"][()], dtype=np.float32)
        velocity = np.asarray(h5["train_behavior"][()], dtype=np.float64)
    angles = reach_angles(velocity, _MC_BIN)  # from the native bins, independent of rebinning
    if factor > 1:
        heldin, heldout = _rebin(heldin, factor, "sum"), _rebin(heldout, factor, "sum")
        velocity = _rebin(velocity, factor, "mean")
    width = factor * _MC_BIN
    time = _MC_WINDOW_START + (np.arange(heldin.shape[1]) + 0.5) * width
    ds = xr.Dataset(
        {
            "spike_counts": (("trial", "time", "unit"), heldin),
            "spike_counts_heldout": (("trial", "time", "unit_heldout"), heldout),
            "hand_velocity": (("trial", "time", "axis"), velocity, {"units": "mm/s"}),
            "reach_angle": ("trial", angles, {"units": "rad"}),
            "condition": ("trial", reach_sectors(angles)),
        },
        coords={
            "trial": np.arange(heldin.shape[0], dtype=np.int64),
            "time": ("time", time, {"units": "s"}),
            "unit": np.arange(heldin.shape[2], dtype=np.int64),
            "unit_heldout": np.arange(heldout.shape[2], dtype=np.int64),
            "axis": np.array(["x", "y"], dtype="<U1"),
        },
    )
    ds.attrs.update(
        bin_size=float(width),
        kind="trials",
        align_event="move_onset_time",
        source="mc_maze_small (NLB MC_Maze_Small, train split)",
        subject_id="Jenkins",
        citation=MC_MAZE_CITATION,
    )
    return ds
