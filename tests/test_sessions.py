"""open_sessions / fit_sessions: lazy collections, per-session preprocessing, seeded fits on any scheduler."""
from __future__ import annotations

import shutil
import sys
import zlib
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))

from range_server import serve  # noqa: E402

from marble_widgets.data.errors import MarbleDataError  # noqa: E402
from marble_widgets.data.flow import flow_field  # noqa: E402
from marble_widgets.data.nwb import nwb_summary, read_nwb  # noqa: E402
from marble_widgets.datasets import jenkins_nwb_path, linear_track_nwb_path  # noqa: E402
from marble_widgets.estimator import MARBLE  # noqa: E402
from marble_widgets.data.containers import combine_flow_fields  # noqa: E402
from marble_widgets.sessions import (  # noqa: E402
    Sessions,
    _sample_counts,
    compute,
    fit_sessions,
    joint_flow_field,
    open_sessions,
    session_embeddings,
    session_seed,
)

# short cuts of the two bundled recordings: Jenkins' first 12 trials, 40 s of the linear track
READ = {"bin_size": 0.05, "t_stop": None}
FLOW = {"n_components": 3, "smooth": 0.1}
SMALL = MARBLE(order=1, k=20, hidden_channels=(8,), out_dim=2, epochs=2, batch_size=32, patience=None)


def _cut(rec: xr.Dataset) -> xr.Dataset:
    """Keep a short stretch so that fits take a fraction of a second."""
    if "trial" in rec.dims:
        return rec.isel(trial=slice(0, 12)).sel(time=slice(None, float(rec["stop_time"][11])))
    return rec.isel(time=slice(1200, 2000))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sessions")
    shutil.copy(jenkins_nwb_path(), root / "jenkins.nwb")
    shutil.copy(linear_track_nwb_path(), root / "track.nwb")
    return root


@pytest.fixture(scope="module")
def sessions(folder) -> Sessions:
    return open_sessions(folder, **READ)


@pytest.fixture(scope="module")
def flow_fields(sessions):
    return sessions.compute(sessions.flow_fields(preprocess=_cut, **FLOW))


# ----------------------------------------------------------------------------- opening
def test_folder_glob_and_list_name_the_sessions(folder):
    assert open_sessions(folder).names == ["jenkins", "track"]
    assert open_sessions(str(folder / "t*.nwb")).names == ["track"]
    s = open_sessions([folder / "track.nwb", folder / "jenkins.nwb"], names=["rat", "monkey"])
    assert s.names == ["rat", "monkey"] and s.sources[0] == str(folder / "track.nwb")
    assert s.sel("monkey").sources == [str(folder / "jenkins.nwb")]


def test_url_sessions_are_named_by_file_or_dandi_asset():
    s = open_sessions(["https://dandiarchive.s3.amazonaws.com/blobs/ab/cd/sub-1_ses-2.nwb?x=1",
                       "https://api.dandiarchive.org/api/assets/0f3e-91/download/"])
    assert s.names == ["sub-1_ses-2", "0f3e-91"]


def test_opening_and_building_the_graph_reads_nothing(folder):
    """Over HTTP every byte is counted: opening and building the whole graph fetch none."""
    with serve(folder) as srv:
        s = open_sessions([srv.url("jenkins.nwb"), srv.url("track.nwb")], **READ)
        flows = s.flow_fields(preprocess=_cut, **FLOW)
        sizes = [dask.delayed(len)(ff) for ff in flows.values()]
        assert "nothing read yet" in repr(s) and s.names == ["jenkins", "track"]
        assert all(dask.is_dask_collection(x) for x in [*flows.values(), *sizes])
        assert srv.traffic.requests == {}
        info = s.info  # metadata only, now
        assert set(srv.traffic.requests) == {"jenkins.nwb", "track.nwb"}
        assert info["n_units"].values.tolist() == [107, 31]
        assert info["source"].values.tolist() == [srv.url("jenkins.nwb"), srv.url("track.nwb")]
        streamed = s.compute({"track": flows["track"]})["track"]
    local = flow_field(_cut(read_nwb(folder / "track.nwb", **READ)), **FLOW)
    np.testing.assert_array_equal(streamed["x"].values, local["x"].values)


def test_info_matches_nwb_summary(sessions, folder):
    info = sessions.info
    assert info.sizes["session"] == 2 and list(info["session"].values) == ["jenkins", "track"]
    for name in ("jenkins", "track"):
        summary = nwb_summary(folder / f"{name}.nwb")
        row = info.sel(session=name)
        assert int(row["n_units"]) == summary["n_units"]
        assert (float(row["t_start"]), float(row["t_stop"])) == summary["time_range"]
        assert str(row["subject_id"].values) == summary["subject_id"]
    assert info["n_trials"].values.tolist() == [100, 0]


def test_each_session_gets_its_own_preprocessing(sessions, flow_fields, folder):
    """107 and 31 units, each session's PCA fitted on itself: equal to a direct flow_field call."""
    for name in ("jenkins", "track"):
        direct = flow_field(_cut(read_nwb(folder / f"{name}.nwb", **READ)), **FLOW)
        xr.testing.assert_identical(flow_fields[name], direct)
    assert flow_fields["jenkins"].sizes["sample"] != flow_fields["track"].sizes["sample"]


# ----------------------------------------------------------------------------- fitting
def test_fit_equals_the_estimator_and_is_the_same_on_threads_and_serially(flow_fields):
    sync = fit_sessions(flow_fields, SMALL, seed=3, scheduler="sync")
    threads = fit_sessions(flow_fields, SMALL, seed=3, scheduler="threads")
    np.testing.assert_array_equal(sync["embedding"].values, threads["embedding"].values)
    assert sync["session"].values.tolist() == ["jenkins", "track"]
    for name, ff in flow_fields.items():
        n = ff.sizes["sample"]
        row = sync.sel(session=name)
        assert int(row["n_samples"]) == n and int(row["seed"]) == session_seed(3, name)
        direct = MARBLE(**{**SMALL.get_params(), "seed": session_seed(3, name), "verbose": False})
        z = direct.fit_transform(ff)
        np.testing.assert_array_equal(row["embedding"].values[:n], z.values)
        assert np.isnan(row["embedding"].values[n:]).all()
        np.testing.assert_array_equal(row["trial"].values[:n], ff["trial"].values)
        assert (row["trial"].values[n:] == -1).all() and (row["condition"].values[n:] == "").all()
    assert (sync["n_epochs"] == 2).all() and np.isfinite(sync["train_loss"]).all()


def test_sessions_fit_and_another_seed(sessions, flow_fields):
    """Sessions.fit runs the same graph end to end; another seed gives another embedding."""
    one = {"track": flow_fields["track"]}
    a = fit_sessions(one, SMALL, seed=0, scheduler="sync")
    b = fit_sessions(one, SMALL, seed=1, scheduler="sync")
    end_to_end = sessions.sel("track").fit(SMALL, seed=0, scheduler="sync", preprocess=_cut, **FLOW)
    xr.testing.assert_identical(end_to_end.drop_vars(["fit_seconds", "fit_cpu_seconds"]),
                                a.drop_vars(["fit_seconds", "fit_cpu_seconds"]))
    assert not np.array_equal(a["embedding"].values, b["embedding"].values)


def test_behaviour_coords_travel_and_progress_reports_each_session(flow_fields):
    """A 1-D behaviour variable every session has comes back padded; progress sees each session once."""
    with_speed = {name: ff.assign(speed=("sample", np.arange(ff.sizes["sample"], dtype=float) / 10))
                  for name, ff in flow_fields.items()}
    calls: list[tuple[str, int, int]] = []
    out = fit_sessions(with_speed, SMALL, scheduler="threads", progress=lambda *a: calls.append(a))
    for name, ff in with_speed.items():
        n = ff.sizes["sample"]
        np.testing.assert_array_equal(out["speed"].sel(session=name).values[:n], ff["speed"].values)
        assert np.isnan(out["speed"].sel(session=name).values[n:]).all()
    assert sorted(c[0] for c in calls) == ["jenkins", "track"]
    assert [c[1:] for c in calls] == [(1, 2), (2, 2)]
    per_session = session_embeddings(out)
    for name, ff in with_speed.items():
        direct = MARBLE(**{**SMALL.get_params(), "seed": session_seed(0, name), "verbose": False}).fit_transform(ff)
        shared = per_session[name].coords  # condition, trial, time, speed: the coords both sessions have
        assert set(shared) == {"sample", "condition", "trial", "time", "speed", "latent"}
        xr.testing.assert_identical(per_session[name], direct.drop_vars([c for c in direct.coords if c not in shared]))
        np.testing.assert_array_equal(per_session[name]["speed"].values, ff["speed"].values)
    with pytest.raises(TypeError, match="returned by fit_sessions"):
        session_embeddings(out.drop_vars("n_samples"))
    one_only = dict(with_speed, track=with_speed["track"].drop_vars("speed"))
    assert "speed" not in fit_sessions(one_only, SMALL, scheduler="sync").coords


def test_progress_true_prints_outside_a_notebook(flow_fields, capsys):
    fit_sessions({"track": flow_fields["track"]}, SMALL, scheduler="sync", progress=True)
    assert capsys.readouterr().out == "sessions: 1/1 done (track)\n"


def test_session_seed_mixes_seed_and_name():
    assert session_seed(0, "track") == zlib.crc32(b"track") % (2**31 - 1)
    assert session_seed(2, "track") == (2 * 1_000_003 + zlib.crc32(b"track")) % (2**31 - 1)
    assert session_seed(0, "track") != session_seed(0, "jenkins")


def test_joint_model_of_all_sessions_is_the_same_on_dask_and_serially(sessions, flow_fields):
    """The joint flow field stacks the sessions (conditions "<session>/<condition>"); the joint
    model's geometry built condition by condition on dask threads gives the serial embedding."""
    joint = sessions.joint_flow_field(preprocess=_cut, **FLOW)
    xr.testing.assert_identical(joint, combine_flow_fields(flow_fields, dim="session"))
    xr.testing.assert_identical(joint_flow_field(flow_fields), joint)
    n_jenkins = flow_fields["jenkins"].sizes["sample"]
    assert joint["session"].values[n_jenkins - 1] == "jenkins" and joint["session"].values[n_jenkins] == "track"
    assert all(str(c).startswith(("jenkins", "track")) for c in np.unique(joint["condition"].values))
    params = {**SMALL.get_params(), "verbose": False}
    serial = MARBLE(**params).fit_transform(joint)
    on_dask = MARBLE(**params).fit_transform(joint, scheduler="threads")
    np.testing.assert_array_equal(on_dask.values, serial.values)
    assert np.isfinite(serial.values).all()
    with pytest.raises(TypeError, match="non-empty mapping"):
        joint_flow_field({})


@pytest.mark.slow
def test_local_cluster_gives_the_serial_embeddings(flow_fields):
    distributed = pytest.importorskip("distributed")
    serial = fit_sessions(flow_fields, SMALL, seed=5, scheduler="sync")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    calls: list[tuple[str, int, int]] = []
    with cluster, distributed.Client(cluster) as client:
        clustered = fit_sessions(flow_fields, SMALL, seed=5, client=client, progress=lambda *a: calls.append(a))
    np.testing.assert_array_equal(serial["embedding"].values, clustered["embedding"].values)
    assert sorted(c[0] for c in calls) == ["jenkins", "track"] and [c[1] for c in calls] == [1, 2]
    timings = ["fit_seconds", "fit_cpu_seconds"]
    xr.testing.assert_identical(serial.drop_vars(timings), clustered.drop_vars(timings))


def _started_at(name: str) -> tuple[str, int]:
    """The task's name and when it started (then holds the worker's one thread a moment)."""
    import time

    start = time.monotonic_ns()
    time.sleep(0.02)
    return name, start


def test_priorities_run_the_largest_sessions_first_on_a_client():
    distributed = pytest.importorskip("distributed")
    sizes = {"a": 156, "b": 799, "c": 400, "d": 0}
    tasks = {n: dask.delayed(_started_at, pure=False)(n) for n in sizes}
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        done = compute(tasks, client=client, priorities=sizes)
    assert list(done) == ["a", "b", "c", "d"] and [v[0] for v in done.values()] == list(sizes)
    assert sorted(sizes, key=lambda n: done[n][1]) == ["b", "c", "a", "d"]
    assert _sample_counts({"x": dask.delayed(len)([1]), "y": xr.Dataset(coords={"sample": [0, 1, 2]})}) == \
        {"x": 0, "y": 3}


# ----------------------------------------------------------------------------- bad input
def test_bad_sources(tmp_path, folder):
    with pytest.raises(MarbleDataError, match="holds no \\*.nwb files"):
        open_sessions(tmp_path)
    with pytest.raises(MarbleDataError, match="matches no files"):
        open_sessions(str(tmp_path / "*.nwb"))
    with pytest.raises(MarbleDataError, match="does not exist"):
        open_sessions([folder / "track.nwb", tmp_path / "gone.nwb"])
    with pytest.raises(MarbleDataError, match=r"\['track'\] occur more than once"):
        open_sessions([folder / "track.nwb", folder / "track.nwb"])
    with pytest.raises(MarbleDataError, match="names has 1 entries but 2 sessions"):
        open_sessions(folder, names=["a"])
    with pytest.raises(TypeError, match="non-empty list"):
        open_sessions([])
    with pytest.raises(MarbleDataError, match="bin_size must be a finite positive"):
        open_sessions(folder, bin_size=-1.0)
    with pytest.raises(MarbleDataError, match=r"unknown session name\(s\) \['x'\]"):
        open_sessions(folder).sel("x")


def test_bad_fit_arguments(flow_fields, sessions):
    one = {"track": flow_fields["track"]}
    with pytest.raises(ValueError, match="scheduler must be one of"):
        fit_sessions(one, SMALL, scheduler="gpu")
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        fit_sessions(one, SMALL, client="tcp://x")
    with pytest.raises(TypeError, match="estimator must be a marble_widgets.MARBLE"):
        fit_sessions(one, estimator={"epochs": 2})
    with pytest.raises(TypeError, match="non-empty mapping"):
        fit_sessions({}, SMALL)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_comps'"):
        sessions.flow_fields(n_comps=3)
