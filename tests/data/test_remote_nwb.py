"""read_nwb / nwb_summary over HTTP: equal to the local read, lazy (bytes counted), cached, clear errors.

A server started here on 127.0.0.1 (``range_server.py``, stdlib ``http.server`` with Range support)
serves copies of the bundled NWB files and counts the body bytes it sends; no outside network.
"""
from __future__ import annotations

import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from range_server import serve, write_big_nwb

from marble_widgets.data import remote
from marble_widgets.data.errors import MarbleDataError
from marble_widgets.data.nwb import nwb_summary, read_nwb
from marble_widgets.datasets import jenkins_nwb_path, linear_track_nwb_path

JENKINS = jenkins_nwb_path().name
TRACK = linear_track_nwb_path().name
BIG = "big.nwb"  # 5 units + a 16 MB acquisition series the summary never needs


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    for src in (jenkins_nwb_path(), linear_track_nwb_path()):
        shutil.copy(src, root / src.name)
    write_big_nwb(root / BIG)
    (root / "notes.nwb").write_text("<html>not an NWB file</html>\n" * 1000)
    with h5py.File(root / "plain.h5", "w") as f:
        f["x"] = np.arange(50_000)
    with serve(root) as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.traffic.reset()
    server.ranges["enabled"] = True
    yield server
    server.ranges["enabled"] = True


def _same_but_source(streamed: xr.Dataset, local: xr.Dataset, url: str) -> None:
    assert streamed.attrs["source"] == url
    xr.testing.assert_identical(streamed.assign_attrs(source=local.attrs["source"]), local)


# ----------------------------------------------------------------------------- equality
@pytest.mark.parametrize("name", [JENKINS, TRACK])
def test_streamed_read_equals_local_read(srv, name):
    local = read_nwb(srv.root / name, bin_size=0.02)
    streamed = read_nwb(srv.url(name), bin_size=0.02)
    _same_but_source(streamed, local, srv.url(name))
    assert 0 < srv.traffic.sent(name) <= (srv.root / name).stat().st_size


def test_streamed_read_with_options_equals_local_read(srv):
    kw = {"bin_size": 0.05, "t_start": 100.0, "t_stop": 160.0, "units": [1152, 1011, 2861], "behavior": False}
    _same_but_source(read_nwb(srv.url(JENKINS), **kw), read_nwb(srv.root / JENKINS, **kw), srv.url(JENKINS))


def test_read_fetches_only_what_it_touches(srv):
    """Jenkins' units/obs_intervals (171 kB, 25 % of the file) is never read by read_nwb, so never fetched."""
    size = (srv.root / JENKINS).stat().st_size
    with h5py.File(srv.root / JENKINS) as f:
        skipped = f["units/obs_intervals"].id.get_storage_size()
    read_nwb(srv.url(JENKINS))
    assert skipped / size > 0.24
    assert srv.traffic.sent(JENKINS) < size - skipped + 2 * remote.DEFAULT_BLOCK_SIZE


def test_redirect_is_followed_like_a_dandi_asset_url(srv):
    url = srv.url(f"redirect/{TRACK}")
    streamed = read_nwb(url, bin_size=0.05)
    _same_but_source(streamed, read_nwb(srv.root / TRACK, bin_size=0.05), url)


# ----------------------------------------------------------------------------- summary
@pytest.mark.parametrize("name", [JENKINS, TRACK, BIG])
def test_summary_equals_local_summary(srv, name):
    streamed, local = nwb_summary(srv.url(name)), nwb_summary(srv.root / name)
    assert streamed.pop("source") == srv.url(name)
    local.pop("source")
    assert streamed == local


def test_summary_fetches_a_small_fraction_of_a_large_file(srv):
    """Metadata + each unit's first/last spike: < 5 % of a 16 MB file (measured: 1.0 %, 7 requests)."""
    size = (srv.root / BIG).stat().st_size
    info = nwb_summary(srv.url(BIG))
    assert info["n_units"] == 5 and size > 16e6
    assert srv.traffic.sent(BIG) < 0.05 * size


# ----------------------------------------------------------------------------- cache
def test_cache_dir_second_read_fetches_nothing(srv, tmp_path):
    first = read_nwb(srv.url(TRACK), cache_dir=tmp_path / "cache")
    fetched = srv.traffic.sent(TRACK)
    assert fetched > 0 and any((tmp_path / "cache").iterdir())
    srv.traffic.reset()
    second = read_nwb(srv.url(TRACK), cache_dir=tmp_path / "cache")
    assert srv.traffic.sent(TRACK) == 0
    xr.testing.assert_identical(first, second)


def test_cache_dir_after_summary_fetches_only_the_rest(srv, tmp_path):
    """The summary's blocks (metadata, first/last spikes) are reused; the read adds the behaviour data."""
    cold = read_nwb(srv.url(TRACK))
    cold_bytes = srv.traffic.sent(TRACK)
    srv.traffic.reset()
    nwb_summary(srv.url(TRACK), cache_dir=tmp_path)
    summary_bytes = srv.traffic.sent(TRACK)
    srv.traffic.reset()
    warm = read_nwb(srv.url(TRACK), cache_dir=tmp_path)
    assert 0 < srv.traffic.sent(TRACK) < cold_bytes <= srv.traffic.sent(TRACK) + summary_bytes
    xr.testing.assert_identical(warm, cold)


def test_concurrent_streamed_reads_do_not_deadlock(srv):
    """h5py's lock + fsspec's I/O thread + the garbage collector can deadlock (h5py #2019); guarded."""
    local = read_nwb(srv.root / JENKINS, bin_size=0.05)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(read_nwb, srv.url(JENKINS), bin_size=0.05, storage_options={"block_size": 1024})
                   for _ in range(4)]
        results = [f.result(timeout=240) for f in futures]
    for ds in results:
        _same_but_source(ds, local, srv.url(JENKINS))


# ----------------------------------------------------------------------------- errors
def test_missing_url(srv):
    with pytest.raises(MarbleDataError, match=r"was not found on its server \(HTTP 404\)"):
        read_nwb(srv.url("nope.nwb"))


def test_unreachable_server():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MarbleDataError, match=r"could not read URL .*server is up and reachable"):
        nwb_summary(f"http://127.0.0.1:{port}/x.nwb")


def test_web_page_instead_of_nwb(srv):
    with pytest.raises(MarbleDataError, match=r"does not serve an HDF5 file \(its first bytes are b'<html>"):
        read_nwb(srv.url("notes.nwb"))


def test_hdf5_but_not_nwb_over_http(srv):
    with pytest.raises(MarbleDataError, match="is HDF5 but could not be read as NWB"):
        read_nwb(srv.url("plain.h5"))


def test_server_without_range_support(srv):
    srv.ranges["enabled"] = False
    with pytest.raises(MarbleDataError, match="does not support HTTP range requests"):
        read_nwb(srv.url(JENKINS))
    assert srv.traffic.requests[JENKINS] == 1  # the probe of the second block, nothing after it


def test_other_schemes_are_refused():
    with pytest.raises(MarbleDataError, match=r"s3:// scheme; only http:// and https://"):
        read_nwb("s3://dandiarchive/blobs/abc")


def test_bad_cache_dir_and_block_size(srv, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(MarbleDataError, match="exists but is not a folder"):
        read_nwb(srv.url(TRACK), cache_dir=tmp_path / "file")
    with pytest.raises(MarbleDataError, match=r"block_size'\] must be a positive"):
        nwb_summary(srv.url(TRACK), storage_options={"block_size": 0})


def test_url_detection():
    assert remote.is_url("https://api.dandiarchive.org/api/assets/x/download/")
    assert not remote.is_url("data/session.nwb") and not remote.is_url(Path("http:/x"))
