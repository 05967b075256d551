"""A folder of NWB sessions to practise multi-session work on: the real linear track + labelled variants.

Why: the many-sessions tutorial needs an archive-like folder without network access. The folder
holds the bundled real recording (``track.nwb``) and synthetic variants of it, each keeping a
different random subset of the units — as sessions of one animal recorded with different
neurons would. Every variant says it is synthetic in its identifier, description and file name.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from marble_widgets.data.bundled import linear_track_nwb_path
from marble_widgets.data.errors import MarbleDataError

__all__ = ["track_sessions"]


def _copy_position(source, target) -> None:
    """The behaviour module (video-tracked position) of ``source`` into ``target``, data in memory."""
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb.behavior import Position, SpatialSeries

    series = source.processing["behavior"]["Position"]["position"]
    copy = SpatialSeries(name="position", description=series.description,
                         data=H5DataIO(series.data[:], compression="gzip", compression_opts=4),
                         timestamps=H5DataIO(series.timestamps[:], compression="gzip", compression_opts=4),
                         reference_frame=series.reference_frame, unit=series.unit)
    module = target.create_processing_module(name="behavior", description="video-tracked position")
    module.add(Position(name="Position", spatial_series=[copy]))


def _variant(source, keep: np.ndarray, name: str, seed: int):
    """An NWBFile holding the units ``keep`` of ``source`` plus its position and epochs, marked synthetic."""
    from pynwb import NWBFile
    from pynwb.file import Subject

    note = (f"SYNTHETIC variant of the bundled linear_track recording (seed {seed}): only units "
            f"{keep.tolist()} of {len(source.units)} kept, to mimic another session with other neurons. "
            "Not a real session.")
    nwb = NWBFile(session_description=note, identifier=f"marble_widgets-synthetic-{name}",
                  session_start_time=source.session_start_time, session_id=name, notes=note,
                  subject=Subject(subject_id=source.subject.subject_id, species=source.subject.species,
                                  description=source.subject.description))
    nwb.add_unit_column(name="tetrode", description="tetrode index in the source recording")
    nwb.add_unit_column(name="cell", description="unit index within its tetrode in the source recording")
    units = source.units
    for i in keep:
        nwb.add_unit(id=int(units.id[int(i)]), spike_times=units["spike_times"][int(i)],
                     tetrode=int(units["tetrode"][int(i)]), cell=int(units["cell"][int(i)]))
    _copy_position(source, nwb)
    for row in source.epochs.to_dataframe().itertuples():
        nwb.add_epoch(start_time=float(row.start_time), stop_time=float(row.stop_time), tags=list(row.tags))
    return nwb


def track_sessions(folder: str | Path, n_variants: int = 5, keep: float = 0.7, seed: int = 0) -> list[Path]:
    """Write ``track.nwb`` (the real recording) and ``synthetic_01.nwb`` ... into ``folder``.

    Variant ``i`` keeps a random ``keep`` fraction of the 31 units (seeded by ``seed`` and ``i``),
    with the same position tracking and epochs. Existing files of these names are not
    overwritten: an error says which. Returns the paths in name order.
    """
    from pynwb import NWBHDF5IO

    if not 0 < keep <= 1 or int(n_variants) < 0:
        raise ValueError(f"need 0 < keep <= 1 and n_variants >= 0; got keep={keep!r}, n_variants={n_variants!r}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = ["track"] + [f"synthetic_{i:02d}" for i in range(1, int(n_variants) + 1)]
    taken = [n for n in names if (folder / f"{n}.nwb").exists()]
    if taken:
        raise MarbleDataError(f"{folder} already holds {[f'{n}.nwb' for n in taken]}; pass an empty folder "
                              "(nothing was written).")
    shutil.copy(linear_track_nwb_path(), folder / "track.nwb")
    with NWBHDF5IO(str(linear_track_nwb_path()), "r") as io:
        source = io.read()
        n_units = len(source.units)
        for i, name in enumerate(names[1:], start=1):
            rng = np.random.default_rng([int(seed), i])
            chosen = np.sort(rng.choice(n_units, size=max(2, round(keep * n_units)), replace=False))
            with NWBHDF5IO(str(folder / f"{name}.nwb"), "w") as out:
                out.write(_variant(source, chosen, name, int(seed)))
    return [folder / f"{n}.nwb" for n in names]
