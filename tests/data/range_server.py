"""A local HTTP file server with byte-range support that counts what it sends (tests and benchmarks).

Also writes the large NWB file the "summary fetches a small fraction" figure is measured on.

Why: streaming NWB reads must be tested without outside network, against a server that behaves
like DANDI's S3 (``Accept-Ranges: bytes``, 206 partial responses), and the tests must know how
many bytes a read fetched. Standard library only: ``http.server`` on 127.0.0.1 in a thread.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Traffic:
    """Bytes of response bodies sent and requests served, per file name (thread-safe counters)."""

    bytes_sent: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, n_bytes: int) -> None:
        with self.lock:
            self.bytes_sent[name] = self.bytes_sent.get(name, 0) + n_bytes
            self.requests[name] = self.requests.get(name, 0) + 1

    def reset(self) -> None:
        with self.lock:
            self.bytes_sent.clear()
            self.requests.clear()

    def sent(self, name: str) -> int:
        with self.lock:
            return self.bytes_sent.get(name, 0)


@dataclass
class RangeServer:
    """A running server: ``url(name)`` of a served file, ``traffic`` counters, ``ranges`` switch."""

    root: Path
    port: int
    traffic: Traffic
    ranges: dict[str, bool]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(root: Path, traffic: Traffic, ranges: dict[str, bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stalls)

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _target(self) -> Path | None:
            path = (root / self.path.lstrip("/").split("?")[0]).resolve()
            return path if path.is_file() and root in path.parents else None

        def _headers(self, code: int, length: int, extra: dict[str, str]) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            if ranges["enabled"]:
                self.send_header("Accept-Ranges", "bytes")
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()

        def _file(self) -> Path | None:
            """The requested file; None after answering a redirect (``/redirect/<name>`` -> 302
            ``/<name>``, as a DANDI asset URL redirects to its S3 object) or a 404."""
            if self.path.startswith("/redirect/"):
                self._headers(302, 0, {"Location": self.path[len("/redirect"):]})
                return None
            path = self._target()
            if path is None:
                self._headers(404, 0, {})
            return path

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            path = self._file()
            if path is not None:
                self._headers(200, path.stat().st_size, {})

        def do_GET(self) -> None:  # noqa: N802
            path = self._file()
            if path is None:
                return
            size = path.stat().st_size
            match = _RANGE.match(self.headers.get("Range", "").strip())
            if match is None or not ranges["enabled"]:
                start, stop, code, extra = 0, size - 1, 200, {}
            else:
                start, stop = _bounds(match, size)
                if start >= size or stop < start:
                    self._headers(416, 0, {"Content-Range": f"bytes */{size}"})
                    return
                code, extra = 206, {"Content-Range": f"bytes {start}-{stop}/{size}"}
            with path.open("rb") as f:
                f.seek(start)
                body = f.read(stop + 1 - start)
            traffic.add(path.name, len(body))  # before the headers: a client that stops reading there sees it counted
            self._headers(code, len(body), extra)
            self.wfile.write(body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    """Clients that drop a connection mid-reply (fsspec refusing a full-body answer) are not errors here."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _bounds(match: re.Match, size: int) -> tuple[int, int]:
    """First and last byte of ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` (last inclusive, clipped)."""
    first, last = match.groups()
    if first == "":
        return max(size - int(last or 0), 0), size - 1
    return int(first), min(int(last), size - 1) if last else size - 1


def write_big_nwb(path: Path) -> Path:
    """5 units (2000 spikes each) + a 16 MB raw acquisition series that a summary never needs.

    The file on which "a summary fetches a small fraction of the bytes" is measured: in real
    sessions the bulk is raw/LFP data, which neither ``nwb_summary`` nor ``read_nwb`` reads.
    """
    import numpy as np
    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.testing.mock.file import mock_NWBFile

    nwb = mock_NWBFile(identifier="big", session_id="big-1")
    rng = np.random.default_rng(0)
    for _ in range(5):
        nwb.add_unit(spike_times=np.sort(rng.uniform(0.0, 100.0, 2000)))
    nwb.add_acquisition(TimeSeries(name="raw", data=rng.standard_normal((1_000_000, 4)).astype(np.float32),
                                   unit="V", starting_time=0.0, rate=10_000.0))
    nwb.add_trial(start_time=1.0, stop_time=2.0)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@contextmanager
def serve(root: Path | str) -> Iterator[RangeServer]:
    """Serve the files of ``root`` on 127.0.0.1 (a free port) from a thread until the block exits."""
    root = Path(root).resolve()
    traffic, ranges = Traffic(), {"enabled": True}
    httpd = _QuietServer(("127.0.0.1", 0), _handler(root, traffic, ranges))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield RangeServer(root, httpd.server_address[1], traffic, ranges)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
