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
from marble_widgets.data.preprocess import block_reduce

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
        heldin, heldout = block_reduce(heldin, 1, factor, "sum"), block_reduce(heldout, 1, factor, "sum")
        velocity = block_reduce(velocity, 1, factor, "mean")
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


# ----------------------------------------------------------------------------- linear-track rat
_PERIODS = ("track", "rest", "all")
_CAMERA_PX = (640, 480)  # camera frame (x, y); the tracker reports the last row/column when it loses the LED
#: off-track band: a bin farther than this fraction of the track length from the track axis is not on the track
TRACK_BAND = 0.15
#: Gaussian sigma (s) smoothing the linear position before differentiating it into a velocity
TRACK_VELOCITY_SMOOTH = 0.2
#: running threshold, track lengths per second (5 %/s: ~8-10 cm/s on a 1.6-2 m track)
TRACK_SPEED_THRESHOLD = 0.05


def _epoch_window(path: pathlib.Path, period: str) -> tuple[float | None, float | None]:
    """(start, stop) in s of the epoch tagged ``period`` ((None, None) for "all"), read with h5py."""
    if period not in _PERIODS:
        raise MarbleDataError(f"period must be one of {_PERIODS}; got {period!r}. Use 'track' for the running epoch.")
    if period == "all":
        return None, None
    with h5py.File(path, "r") as h5:
        group = h5["intervals/epochs"]
        tags = [t.decode() if isinstance(t, bytes) else str(t) for t in group["tags"][()]]
        ends = np.asarray(group["tags_index"][()], dtype=np.int64)
        starts, stops = group["start_time"][()], group["stop_time"][()]
    rows = [i for i, (a, b) in enumerate(zip(np.r_[0, ends[:-1]], ends)) if period in tags[a:b]]
    if not rows:
        raise MarbleDataError(f"the epochs table of {path.name} has no epoch tagged {period!r}; rebuild the file.")
    return float(starts[rows[0]]), float(stops[rows[0]])


def _on_camera(px: np.ndarray) -> np.ndarray:
    """Bins whose tracked pixel is finite and inside the frame (the last row/column means "LED lost")."""
    inside = (px[:, 0] > 0) & (px[:, 0] < _CAMERA_PX[0] - 1) & (px[:, 1] > 0) & (px[:, 1] < _CAMERA_PX[1] - 1)
    return np.isfinite(px).all(axis=1) & inside


def _principal_axis(px: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, first and second principal axes of the kept (x, y) pixels; axis[0] > 0 (left-to-right)."""
    centre = px[keep].mean(axis=0)
    axes = np.linalg.svd(px[keep] - centre, full_matrices=False)[2]
    major = axes[0] * (1.0 if axes[0, 0] >= 0 else -1.0)
    return centre, major, axes[1]


def track_linearisation(px: np.ndarray) -> dict[str, np.ndarray | float]:
    """Project 2-D pixel positions onto the track's first principal axis, normalised to [0, 1].

    The track runs diagonally in the camera image, so its long axis is the first principal axis of
    the tracked pixels. Two passes: fit on every on-camera bin, drop bins farther than
    ``TRACK_BAND`` x track length from that axis (the animal carried on/off the track), refit.
    Returns ``position`` (NaN off track), bool ``tracked``, ``axis``, ``centre``, ``length_px``.
    """
    px = np.asarray(px, dtype=np.float64)
    tracked = _on_camera(px)
    if tracked.sum() < 2:
        nan = np.full(len(px), np.nan)
        return {"position": nan, "tracked": np.zeros(len(px), bool), "axis": np.full(2, np.nan),
                "centre": np.full(2, np.nan), "length_px": float("nan")}
    for _ in range(2):
        centre, major, minor = _principal_axis(px, tracked)
        along = np.where(tracked[:, None], px - centre, 0.0) @ major
        length = float(np.ptp(along[tracked]))
        tracked &= np.abs(np.where(tracked[:, None], px - centre, 0.0) @ minor) <= TRACK_BAND * length
    lo, hi = float(along[tracked].min()), float(along[tracked].max())
    position = np.where(tracked, (along - lo) / (hi - lo), np.nan)
    return {"position": position, "tracked": tracked, "axis": major, "centre": centre, "length_px": hi - lo}


def _smoothed_velocity(position: np.ndarray, bin_size: float) -> np.ndarray:
    """NaN-aware Gaussian-smoothed linear velocity (track lengths/s); NaN where under half the kernel is tracked."""
    from scipy.ndimage import gaussian_filter1d

    valid = np.isfinite(position)
    sigma = TRACK_VELOCITY_SMOOTH / bin_size
    weight = gaussian_filter1d(valid.astype(np.float64), sigma, mode="constant")
    total = gaussian_filter1d(np.where(valid, position, 0.0), sigma, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = np.where(weight >= 0.5, total / weight, np.nan)
    if len(smooth) < 2:
        return np.full(len(smooth), np.nan)
    return np.gradient(smooth) / bin_size


def _running_labels(velocity: np.ndarray, tracked: np.ndarray) -> dict[str, np.ndarray]:
    """Direction ("right" = increasing position, "left", "none" where v is NaN/0), speed and running."""
    speed = np.abs(velocity)
    direction = np.full(len(velocity), "none", dtype="<U5")
    with np.errstate(invalid="ignore"):
        direction[velocity > 0] = "right"
        direction[velocity < 0] = "left"
        running = tracked & np.isfinite(speed) & (speed >= TRACK_SPEED_THRESHOLD)
    return {"direction": direction, "speed": speed, "running": running}


def linear_track(bin_size: float = 0.025, *, period: str = "track") -> xr.Dataset:
    """Load the linear-track rat (31 units) as an analysis-ready continuous recording Dataset.

    The second real rat on a linear track (next to Buddy, :func:`rat_hippocampus`), with position
    linearised and normalised so the two animals can be compared on one track coordinate.
    Source: nelpy example data (Ackermann et al., MIT License), via ``linear_track.nwb``.

    Choices: spikes are binned and the 60 Hz pixel tracking interpolated onto the bins by
    :func:`~marble_widgets.data.nwb.read_nwb`, inside the epoch tagged ``period`` ("track": the
    15 min running session; "rest": the 15 min rest, no tracking; "all": both). Tracking counts
    as lost where the pixel is NaN or on the frame's last row/column (the first ~26 s report
    (477, 479)) or farther than ``TRACK_BAND`` (15 %) of the track length from the track axis
    (the animal carried on/off the track). ``position`` is the projection on the first principal
    axis of the tracked (x, y) (the track runs diagonally), oriented left-to-right in the image,
    scaled so the tracked bins span exactly [0, 1]. The velocity is the derivative of the
    position smoothed by a NaN-aware Gaussian (sigma ``TRACK_VELOCITY_SMOOTH`` = 0.2 s, removing
    LED jitter and head sway); "right" = increasing position, as for Buddy. ``running`` marks
    tracked bins with speed >= ``TRACK_SPEED_THRESHOLD`` = 0.05 track lengths/s (~8-10 cm/s for a
    1.6-2 m track: above the 2-5 cm/s usually called stationary, well below the ~0.3 lengths/s
    typical running speed here). No bin is dropped: downstream code selects ``running``.

    Returns
    -------
    xr.Dataset
        ``spike_counts`` (time, unit) int32; ``position`` (time,) in [0, 1] (NaN untracked);
        ``position_px`` (time, axis) pixels as recorded; ``velocity`` and ``speed`` (time,) track
        lengths/s; ``direction`` (time,) "right"/"left" ("none" where the velocity is NaN or 0);
        bool ``right``, ``left``, ``tracked``, ``running``; the epochs table on ``epoch``. attrs:
        ``source``, ``subject_id``, ``bin_size``, ``kind``="continuous", ``period``, ``citation``,
        the fitted axis (``track_axis_x/y``, ``track_centre_x/y``, ``track_length_px``) and thresholds.
    """
    from marble_widgets.data.nwb import read_nwb

    path = linear_track_nwb_path()
    t_start, t_stop = _epoch_window(path, period)
    rec = read_nwb(path, bin_size=bin_size, t_start=t_start, t_stop=t_stop)
    px = rec["position"].values if "position" in rec else np.full((rec.sizes["time"], 2), np.nan)
    line = track_linearisation(px)
    velocity = _smoothed_velocity(line["position"], float(bin_size))
    labels = _running_labels(velocity, line["tracked"])
    rate = {"units": "track lengths/s", "smooth_sigma_s": TRACK_VELOCITY_SMOOTH}
    ds = rec.drop_vars("position").assign(
        position=("time", line["position"], {"units": "normalised track position (0..1)"}),
        position_px=rec["position"].assign_attrs(units="pixels") if "position" in rec else (("time", "axis"), px),
        velocity=("time", velocity, rate),
        speed=("time", labels["speed"], rate),
        direction=("time", labels["direction"]),
        right=("time", labels["direction"] == "right"),
        left=("time", labels["direction"] == "left"),
        tracked=("time", line["tracked"]),
        running=("time", labels["running"], {"threshold": TRACK_SPEED_THRESHOLD}),
    )
    ds.attrs.update(
        source="linear_track (nelpy example data)", nwb_file=path.name, bin_size=float(bin_size), kind="continuous",
        period=period, citation=LINEAR_TRACK_CITATION, track_band=TRACK_BAND, speed_threshold=TRACK_SPEED_THRESHOLD,
        velocity_smooth=TRACK_VELOCITY_SMOOTH, track_length_px=float(line["length_px"]),
        track_axis_x=float(line["axis"][0]), track_axis_y=float(line["axis"][1]),
        track_centre_x=float(line["centre"][0]), track_centre_y=float(line["centre"][1]),
    )
    return ds
