"""Open NWB files over HTTP(S) lazily: fsspec's HTTP filesystem + h5py, as pynwb documents for streaming.

Why: sessions live on DANDI or a lab server; reading one should fetch only the bytes the read
touches (HTTP range requests), not download the file. ``read_nwb``/``nwb_summary`` call
:func:`open_nwb_url` for any ``http(s)://`` address (a DANDI asset URL is resolved through its
redirect once). An optional ``cache_dir`` keeps fetched blocks on disk (fsspec's ``blockcache``),
so a second read of the same file fetches nothing already seen. Never imports torch.
"""
from __future__ import annotations

import gc
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from marble_widgets.data.errors import MarbleDataError

__all__ = ["DEFAULT_BLOCK_SIZE", "is_url", "check_url", "open_url", "open_nwb_url"]

#: bytes per block. HDF5 metadata lies in small scattered pieces, so small blocks fetch little
#: beyond what a read touches; consecutive missing blocks go out as one range request (fsspec's
#: "mmap" cache), so a large array still costs one round trip (see benchmarks/sessions.py).
DEFAULT_BLOCK_SIZE = 16 * 1024
#: namespaces pynwb ships; a file caching only these reads the same without loading its cached specs
_BUILTIN_NAMESPACES = {"core", "hdmf-common", "hdmf-experimental"}
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_GC_LOCK = threading.Lock()
_GC_STATE = {"open": 0, "was_enabled": True}


def is_url(path: Any) -> bool:
    """Whether ``path`` is a string with a URL scheme (``http://``, ``s3://`` ...), not a local path."""
    return isinstance(path, str) and _SCHEME.match(path) is not None


def check_url(url: str) -> str:
    """Return ``url`` if it is ``http(s)://``; raise naming the supported schemes otherwise."""
    scheme = _SCHEME.match(url).group(1).lower()
    if scheme not in ("http", "https"):
        raise MarbleDataError(
            f"URL {url!r} uses the {scheme}:// scheme; only http:// and https:// URLs can be streamed. "
            "Use the object's https address (DANDI: the asset's download URL) or download the file first."
        )
    return url


@contextmanager
def open_url(
    url: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A seekable read-only file object over ``url`` that fetches blocks with HTTP range requests.

    Why: h5py reads any seekable Python file, so this is all HDF5 needs to stream. Checks that
    the server answers, reports the file's size and honours ``Range``; raises MarbleDataError
    naming the problem otherwise. ``storage_options`` go to ``fsspec.filesystem("http", ...)``
    (e.g. ``{"headers": {"Authorization": ...}}``), except ``block_size`` (bytes per request,
    default :data:`DEFAULT_BLOCK_SIZE`). ``cache_dir`` keeps fetched blocks on disk.
    """
    check_url(url)
    options = dict(storage_options or {})
    block_size = int(options.pop("block_size", DEFAULT_BLOCK_SIZE))
    if block_size < 1:
        raise MarbleDataError(f"storage_options['block_size'] must be a positive number of bytes; got {block_size}.")
    http = _http_filesystem(options)
    info = _info(http, url)
    target = info.get("url") or url  # a redirect (DANDI asset -> S3 object) is followed once, here
    # fetched blocks are kept in a sparse temporary file ("mmap"), or in cache_dir (blockcache filesystem)
    if cache_dir is None:
        fs, kw = http, {"cache_type": "mmap", "size": info["size"]}
    else:  # the caching filesystem sets both itself
        fs, kw = _block_cache(http, cache_dir), {}
    try:
        f = fs.open(target, "rb", block_size=block_size, **kw)
    except (OSError, ValueError) as err:
        raise _unreachable(url, err) from err
    with f:
        _check_ranges(f, url, block_size)
        yield f


@contextmanager
def open_nwb_url(
    url: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """``(h5py.File, pynwb.NWBHDF5IO)`` over ``url``, both closed (with the HTTP file) on exit.

    The route pynwb documents for streaming: ``h5py.File(fsspec_file)`` then
    ``NWBHDF5IO(file=...)``. A file whose cached specifications are only the namespaces pynwb
    ships is read without loading them (they are ignored in favour of pynwb's own versions
    anyway), which saves fetching them; files with extensions load their cached specs.
    """
    import h5py
    from pynwb import NWBHDF5IO

    with ExitStack() as stack:
        stack.enter_context(_no_cyclic_gc())
        f = stack.enter_context(open_url(url, cache_dir=cache_dir, storage_options=storage_options))
        head = f.read(len(_HDF5_SIGNATURE))
        f.seek(0)
        try:
            h5 = stack.enter_context(h5py.File(f, "r"))
        except OSError as err:
            if head != _HDF5_SIGNATURE:
                raise MarbleDataError(
                    f"URL {url!r} does not serve an HDF5 file (its first bytes are {head!r}), so it cannot be "
                    "NWB 2: check the address (a web page instead of the file?) or use the asset's download URL."
                ) from err
            raise
        io = NWBHDF5IO(file=h5, mode="r", load_namespaces=_needs_cached_specs(h5))
        stack.callback(io.close)
        yield h5, io


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while any streamed HDF5 file is open in this process.

    Why: h5py holds its global lock while it calls the file object, whose reads run on fsspec's
    event-loop thread; a collection triggered on that thread that frees an h5py object needs the
    same lock and the process deadlocks (h5py issue 2019, h5py's file-like-object docs). A counter
    keeps the collector off until the last concurrent remote read ends (no forced collection then:
    a full ``gc.collect()`` costs more than a small file's whole read once torch is imported).
    """
    with _GC_LOCK:
        if _GC_STATE["open"] == 0:
            _GC_STATE["was_enabled"] = gc.isenabled()
            gc.disable()
        _GC_STATE["open"] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_STATE["open"] -= 1
            if _GC_STATE["open"] == 0 and _GC_STATE["was_enabled"]:
                gc.enable()


def _http_filesystem(options: dict[str, Any]) -> Any:
    """fsspec's HTTP filesystem (aiohttp) with the given options."""
    import fsspec

    try:
        return fsspec.filesystem("http", **options)
    except ImportError as err:  # fsspec without its [http] extra
        raise ImportError("streaming NWB files needs fsspec's HTTP support: pip install 'fsspec[http]' "
                          "(it brings aiohttp).") from err


def _info(fs: Any, url: str) -> dict[str, Any]:
    """Size and final URL of ``url`` (HEAD, redirects followed); clear errors when unusable."""
    try:
        info = fs.info(url)
    except Exception as err:  # fsspec raises FileNotFoundError from any HEAD+GET failure
        cause = err.__cause__ or err
        if getattr(cause, "status", None) == 404:
            raise MarbleDataError(f"URL {url!r} was not found on its server (HTTP 404); check the address.") from err
        raise _unreachable(url, cause) from err
    if not info.get("size"):
        raise MarbleDataError(
            f"the server of {url!r} does not report the file's size (no Content-Length), so the file cannot be "
            "read in ranges; download it and pass the local path."
        )
    return info


def _unreachable(url: str, err: BaseException) -> MarbleDataError:
    status = getattr(err, "status", None)
    what = f"HTTP {status}" if status else f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    return MarbleDataError(
        f"could not read URL {url!r} ({what}). Check the address, that the server is up and reachable "
        "from this machine, and any credentials (pass headers via storage_options)."
    )


def _check_ranges(f: Any, url: str, block_size: int) -> None:
    """Fetch the second block (the first one at a non-zero offset) to see that ranges work."""
    if f.size <= block_size:
        return  # one block holds the whole file: ranges never needed
    try:
        f.seek(block_size)
        f.read(1)
        f.seek(0)
    except ValueError as err:
        if "range" not in str(err).lower():
            raise
        raise MarbleDataError(
            f"the server of {url!r} does not support HTTP range requests, so the file cannot be streamed; "
            "download it and pass the local path (or serve it from a server with range support)."
        ) from err
    except Exception as err:
        raise _unreachable(url, err) from err


def _block_cache(http: Any, cache_dir: str | os.PathLike) -> Any:
    """fsspec's ``blockcache`` over ``http``: fetched blocks are kept in sparse files in ``cache_dir``."""
    from fsspec.implementations.cached import CachingFileSystem

    if not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError("cache_dir must be a folder path (str or os.PathLike) or None; "
                        f"got {type(cache_dir).__name__}.")
    folder = Path(cache_dir)
    if folder.exists() and not folder.is_dir():
        raise MarbleDataError(f"cache_dir {str(folder)!r} exists but is not a folder; pass a folder path.")
    folder.mkdir(parents=True, exist_ok=True)
    return CachingFileSystem(fs=http, cache_storage=str(folder), skip_instance_cache=True)


def _needs_cached_specs(h5: Any) -> bool:
    """Whether the file caches a namespace beyond pynwb's own (an extension), so specs must be loaded."""
    specs = h5.get("specifications")
    return specs is not None and not set(specs.keys()) <= _BUILTIN_NAMESPACES
