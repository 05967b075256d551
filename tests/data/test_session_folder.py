"""track_sessions: the real linear track plus synthetic unit-subset variants, written as NWB files."""
from __future__ import annotations

import numpy as np
import pytest

from marble_widgets.data.errors import MarbleDataError
from marble_widgets.data.nwb import nwb_summary, read_nwb
from marble_widgets.data.session_folder import track_sessions
from marble_widgets.datasets import linear_track_nwb_path

READ = {"bin_size": 0.1, "t_start": 4400.0, "t_stop": 4600.0}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("track_sessions")
    track_sessions(root, n_variants=2, keep=0.5, seed=3)
    return root


def test_variants_are_exact_unit_subsets_of_the_real_recording(folder):
    real = read_nwb(linear_track_nwb_path(), **READ)
    assert (folder / "track.nwb").read_bytes() == linear_track_nwb_path().read_bytes()
    kept = []
    for name in ("synthetic_01", "synthetic_02"):
        variant = read_nwb(folder / f"{name}.nwb", **READ)
        units = variant["unit"].values
        assert units.size == 16 and np.all(np.diff(units) > 0)  # round(0.5 * 31) of the 31 unit ids
        np.testing.assert_array_equal(variant["spike_counts"].values, real["spike_counts"].sel(unit=units).values)
        np.testing.assert_array_equal(variant["position"].values, real["position"].values)
        kept.append(units.tolist())
    assert kept[0] != kept[1]
    rng = np.random.default_rng([3, 1])
    assert kept[0] == np.sort(rng.choice(31, size=16, replace=False)).tolist()


def test_variants_say_they_are_synthetic(folder):
    summary = nwb_summary(folder / "synthetic_01.nwb")
    assert summary["identifier"] == "marble_widgets-synthetic-synthetic_01"
    assert summary["n_units"] == 16
    assert "SYNTHETIC" in summary["session_description"]


def test_refuses_to_overwrite_and_bad_arguments(folder, tmp_path):
    before = (folder / "synthetic_01.nwb").read_bytes()
    with pytest.raises(MarbleDataError, match=r"already holds \['track.nwb', 'synthetic_01.nwb'"):
        track_sessions(folder, n_variants=1)
    assert (folder / "synthetic_01.nwb").read_bytes() == before
    with pytest.raises(ValueError, match="need 0 < keep <= 1"):
        track_sessions(tmp_path, keep=0.0)
    assert list(tmp_path.iterdir()) == []
