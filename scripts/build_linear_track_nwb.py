"""Convert nelpy's raw linear-track example data into the bundled NWB file ``linear_track.nwb``.

Why: the tutorials need one real recording with spikes *and* behaviour that goes through the
whole NWB path (``read_nwb``). Inputs (vendored, MIT licence, (c) 2017 nelpy):
``spikes.mat`` (nested MATLAB cells, one struct with field ``time`` in seconds per sorted unit)
and ``trajectory.videoPositionTracking`` (text header, then 12-byte records of a 30 kHz tick
clock and LED pixel positions). Run ``python scripts/build_linear_track_nwb.py [--out PATH]``.
The output is deterministic: fixed identifier, session_start_time and file_create_date.
"""
from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.io

if TYPE_CHECKING:
    from pynwb import NWBFile

REPO = Path(__file__).resolve().parents[1]
RAW_DIR = REPO / "marble_widgets" / "datasets" / "files" / "raw" / "linear_track"
OUT_PATH = REPO / "marble_widgets" / "datasets" / "files" / "linear_track.nwb"

TICKS_PER_SECOND = 30_000.0
HEADER_END = b"<End settings>\n"
RECORD = np.dtype([("time", "<u4"), ("x", "<u2"), ("y", "<u2"), ("x2", "<u2"), ("y2", "<u2")])
# after the track session the tracker reports this fixed pixel for the rest of the file (no animal)
REST_PIXEL = (522, 8)
# no recording date is given; the creation date of spikes.mat stands in for it
FIXED_DATE = datetime(2017, 8, 7, tzinfo=timezone.utc)
SOURCE = ("nelpy example data 'linear_track' (spikes.mat, trajectory.videoPositionTracking), "
          "MIT License, Copyright (c) 2017 nelpy; see marble_widgets/datasets/files/LICENSES.md")


def load_units(mat_path: Path) -> list[tuple[int, int, np.ndarray]]:
    """(tetrode, cell, spike times in s) of every non-empty unit, walking the MATLAB nesting.

    ``spikes{day}{epoch}{tetrode}{cell}.time``: tetrode and cell are the 1-based MATLAB indices
    of the last two cell-array levels; empty records (unsorted units) are skipped.
    """
    mat = scipy.io.loadmat(mat_path)
    units: list[tuple[int, int, np.ndarray]] = []
    _walk(mat["spikes"], (), units)
    return units


def _walk(node: np.ndarray, path: tuple[int, ...], out: list[tuple[int, int, np.ndarray]]) -> None:
    """Depth-first over object (cell) arrays; structs with a non-empty ``time`` field are units."""
    if node.dtype == object:
        for k, child in enumerate(node.ravel(order="F")):
            _walk(child, path + (k + 1,), out)
    elif node.dtype.names and "time" in node.dtype.names:
        for record in node.ravel(order="F"):
            times = np.asarray(record["time"], dtype=np.float64).ravel()
            if times.size:
                out.append((path[-2], path[-1], times))


def load_tracking(track_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frame times (s, ticks / 30 kHz) and LED positions (frames, 2) in pixels, as recorded."""
    raw = track_path.read_bytes()
    start = raw.index(HEADER_END) + len(HEADER_END)
    if (len(raw) - start) % RECORD.itemsize:
        raise ValueError(f"{track_path}: {len(raw) - start} data bytes is not a whole number of "
                         f"{RECORD.itemsize}-byte records; the file is truncated or not this format.")
    rec = np.frombuffer(raw[start:], dtype=RECORD)
    times = rec["time"].astype(np.float64) / TICKS_PER_SECOND
    xy = np.stack([rec["x"], rec["y"]], axis=1)
    return times, xy


def split_track_rest(xy: np.ndarray) -> int:
    """Index of the first frame of the final run frozen at ``REST_PIXEL`` (the rest period)."""
    frozen = np.all(xy == np.asarray(REST_PIXEL), axis=1)
    moving = np.flatnonzero(~frozen)
    return int(moving[-1]) + 1 if moving.size else 0


def make_nwbfile(units: list[tuple[int, int, np.ndarray]], times: np.ndarray, xy: np.ndarray) -> NWBFile:
    """Assemble the NWBFile: subject, Units (with tetrode/cell), behaviour Position and epochs."""
    from pynwb import NWBFile
    from pynwb.file import Subject

    nwb = NWBFile(
        session_description=("Rat hippocampus, running on a linear track (until the video tracking "
                             "stops) then resting; converted from " + SOURCE + "."),
        identifier="marble_widgets-nelpy-linear-track-v1",
        session_start_time=FIXED_DATE,
        file_create_date=[FIXED_DATE],
        session_id="linear_track",
        notes=("Times are seconds on the acquisition clock (30 kHz ticks / 30000), the clock of the "
               "source files; session_start_time is a placeholder (the date spikes.mat was written), "
               "the recording date is not given."),
        source_script="scripts/build_linear_track_nwb.py (marble_widgets)",
        source_script_file_name="build_linear_track_nwb.py",
        subject=Subject(subject_id="nelpy-linear-track", species="Rattus norvegicus",
                        description="Rat from nelpy's example data; age and sex not given."),
    )
    _add_units(nwb, units)
    rest_start = split_track_rest(xy)
    _add_position(nwb, times[:rest_start], xy[:rest_start])
    nwb.add_epoch(start_time=float(times[0]), stop_time=float(times[rest_start - 1]), tags=["track"])
    if rest_start < len(times):
        nwb.add_epoch(start_time=float(times[rest_start]), stop_time=float(times[-1]), tags=["rest"])
    return nwb


def _add_units(nwb: NWBFile, units: list[tuple[int, int, np.ndarray]]) -> None:
    nwb.add_unit_column(name="tetrode", description="tetrode index (1-based, MATLAB cell index in spikes.mat)")
    nwb.add_unit_column(name="cell", description="unit index within its tetrode (1-based, as in spikes.mat)")
    for tetrode, cell, spikes in units:
        nwb.add_unit(spike_times=np.sort(spikes), tetrode=tetrode, cell=cell)


def _add_position(nwb: NWBFile, times: np.ndarray, xy: np.ndarray) -> None:
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb.behavior import Position, SpatialSeries

    series = SpatialSeries(
        name="position",
        description=("LED position in camera pixels as recorded (640x480 camera, no pixel scale given; "
                     "x is roughly along the track). Only the track period is stored: afterwards the "
                     f"tracker reports the fixed pixel {REST_PIXEL} (no animal), see the epochs table."),
        data=H5DataIO(xy.astype(np.float32), compression="gzip", compression_opts=4),
        timestamps=H5DataIO(times, compression="gzip", compression_opts=4),
        reference_frame="camera image, (0, 0) at the top-left pixel, x to the right, y down",
        unit="pixels",
    )
    module = nwb.create_processing_module(name="behavior", description="video-tracked position")
    module.add(Position(name="Position", spatial_series=[series]))


def build(raw_dir: str | Path = RAW_DIR, out_path: str | Path = OUT_PATH) -> Path:
    """Convert the raw files in ``raw_dir`` into the NWB file ``out_path`` and return its path."""
    from pynwb import NWBHDF5IO

    raw_dir, out_path = Path(raw_dir), Path(out_path)
    units = load_units(raw_dir / "spikes.mat")
    times, xy = load_tracking(raw_dir / "trajectory.videoPositionTracking")
    nwb = make_nwbfile(units, times, xy)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with NWBHDF5IO(str(out_path), "w") as io:
        io.write(nwb)
    return out_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", default=str(RAW_DIR), help="folder with spikes.mat and the tracking file")
    parser.add_argument("--out", default=str(OUT_PATH), help="output .nwb path")
    args = parser.parse_args()
    path = build(args.raw, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
