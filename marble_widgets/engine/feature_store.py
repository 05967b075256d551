"""An on-disk (zarr) store of parameter-free features, for joint training beyond memory (issue 15).

Without diffusion MARBLE's features have no parameters: they are computed once. The derivative
operators are block-diagonal over conditions, so :func:`write_feature_store` computes them one
condition at a time and writes each block's rows (float32, the dtype training uses) into a
row-chunked zarr array; the full ``N x E`` matrix is never in memory. :class:`StoredFeatures`
is the :class:`~marble_widgets.engine.network.FeatureSource` training reads minibatch rows from,
through a chunk cache, so random minibatches read each chunk once while it fits the cache.
The store carries a fingerprint of the geometry and the feature settings: reopening it for
another geometry is refused.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from marble_widgets.engine.config import FeatureConfig
from marble_widgets.engine.features import (
    DEFAULT_MAX_BYTES,
    feature_count,
    order_kernels,
    signal_in_frames,
    stacked_features,
)
from marble_widgets.engine.network import FeatureSource, build_feature_source

#: bytes of one stored chunk of rows (about; at least 64 rows): small chunks keep a random row cheap
CHUNK_BYTES = 256 * 1024
#: default bytes of decoded chunks kept in memory by :class:`StoredFeatures`
CACHE_BYTES = 1024**3
#: ``feature_store="auto"`` stores the features when, as float64, they would exceed this (the cap of
#: the in-memory path, :func:`~marble_widgets.engine.features.check_feature_size`)
AUTO_STORE_BYTES = DEFAULT_MAX_BYTES
FORMAT = "marble-feature-store/1"
#: owner (model) -> remover of its temporary store; kept here so that the model stays picklable
_TEMPORARY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def feature_width(geometry, config: FeatureConfig) -> int:
    """Number of linear features E of ``geometry`` with ``config``."""
    n_signal = geometry.n_directions if geometry.local_gauges else geometry.signal.shape[1]
    return feature_count(int(n_signal), int(geometry.n_directions), int(config.order), bool(config.include_self))


def needs_store(geometry, config: FeatureConfig) -> bool:
    """Whether ``feature_store="auto"`` stores these features: no diffusion and float64 size > AUTO_STORE_BYTES."""
    return not config.diffusion and 8 * geometry.n_nodes * feature_width(geometry, config) > AUTO_STORE_BYTES


def fingerprint(geometry, config: FeatureConfig) -> str:
    """Digest of what the stored features depend on: nodes, signal, graph, frames, kernels, settings."""
    h = hashlib.blake2b(digest_size=16)
    settings = {k: v for k, v in asdict(config).items() if k != "inner_product_features"}
    if config.inner_product_features == "invariant":  # other kernels; the parity modes keep their digest
        settings["kernels"] = "least_squares"
    h.update(repr(sorted(settings.items())).encode())
    for arr in (geometry.pos, geometry.signal, geometry.edge_index, geometry.frames):
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    for k in geometry.kernels:
        h.update(np.ascontiguousarray(k.data).tobytes())
    return h.hexdigest()


def _blocks(geometry) -> list[tuple[int, int]]:
    """Node ranges ``[start, stop)`` of the conditions (geometry nodes are grouped by condition)."""
    counts = np.bincount(geometry.condition, minlength=max(geometry.n_conditions, 1))
    edges = np.concatenate([[0], np.cumsum(counts)])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _block_features(operators, signal: np.ndarray, start: int, stop: int, config: FeatureConfig) -> np.ndarray:
    """Features of the nodes ``start:stop`` of one condition from the diagonal blocks of each order's kernels (float32).

    ``operators``: ``n_nodes`` and ``kernels``, one list per order (:func:`_order_kernels`).
    """
    def block(ks: list) -> list:
        b = ks[0].shape[0] // operators.n_nodes if ks else 1
        rows = slice(start * b, stop * b)
        return [k[rows, rows] for k in ks]

    sliced: dict[int, list] = {}
    part = [sliced.setdefault(id(ks), block(ks)) for ks in operators.kernels]
    out = stacked_features(signal[start:stop], stop - start, part, config.include_self, config.vec_norm)
    return out.astype(np.float32, copy=False)


def _order_kernels(geometry, config: FeatureConfig) -> SimpleNamespace:
    """The kernels of every order (:func:`~marble_widgets.engine.features.order_kernels`) and the node count."""
    invariant = config.inner_product_features == "invariant"
    return SimpleNamespace(n_nodes=geometry.n_nodes, kernels=order_kernels(geometry, config.order, invariant))


def _chunk_rows(width: int) -> int:
    return max(64, CHUNK_BYTES // max(4 * width, 1))


def open_or_write(path: str | Path, geometry, config: FeatureConfig) -> Path:
    """The store of ``geometry``'s features at ``path``: reused when its fingerprint matches, else written.

    Raises a ValueError when ``path`` holds a store of other features (another geometry or other
    settings), or anything that is not a feature store.
    """
    import zarr

    path = Path(path)
    want = fingerprint(geometry, config)
    if path.exists():
        try:
            found = zarr.open_group(str(path), mode="r").attrs.asdict()
        except Exception:  # noqa: BLE001 - any unreadable folder gets the same message
            found = {}
        if found.get("format") != FORMAT:
            raise ValueError(f"feature_store={str(path)!r} exists and is not a MARBLE feature store: "
                             "pass a new path (it is created) or remove that folder.")
        if found.get("fingerprint") != want:
            raise ValueError(
                f"the feature store at {str(path)!r} holds the features of another geometry or other feature "
                f"settings (fingerprint {found.get('fingerprint')} != {want}): pass another path, or delete it "
                "to recompute the features for this flow field."
            )
        return path
    return write_feature_store(path, geometry, config, fingerprint_=want)


def write_feature_store(path: str | Path, geometry, config: FeatureConfig, *, fingerprint_: str | None = None) -> Path:
    """Compute the features condition by condition and write them (and positions) to a new zarr store.

    Why: the derivative operators are block-diagonal, so at most one condition's features are in
    memory at a time. Layout: ``features`` (N, E) float32, ``positions`` (N, n) float32 when
    ``include_positions``, chunked by rows; attrs ``format``, ``fingerprint``, ``n_nodes``, ``width``.
    """
    import zarr

    if config.diffusion:
        raise ValueError("features with diffusion depend on the learnable time and cannot be stored: "
                         "use feature_store=None with diffusion=True, or diffusion=False.")
    path = Path(path)
    width = feature_width(geometry, config)
    rows = _chunk_rows(width)
    group = zarr.open_group(str(path), mode="w-")
    try:
        feats = group.create_array("features", shape=(geometry.n_nodes, width), chunks=(rows, width),
                                   dtype="float32", compressors=None, fill_value=0.0)
        if config.include_positions:
            pos = group.create_array("positions", shape=geometry.pos.shape, chunks=(rows, geometry.pos.shape[1]),
                                     dtype="float32", compressors=None, fill_value=0.0)
            pos[:] = geometry.pos.astype(np.float32)
        signal = signal_in_frames(geometry)
        operators = _order_kernels(geometry, config)
        for start, stop in _blocks(geometry):
            feats[start:stop] = _block_features(operators, signal, start, stop, config)
        group.attrs.update(format=FORMAT, fingerprint=fingerprint_ or fingerprint(geometry, config),
                           n_nodes=int(geometry.n_nodes), width=int(width), chunk_rows=int(rows))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


class StoredFeatures(FeatureSource):
    """Rows of features (and positions) read from a feature store through an LRU chunk cache.

    Why: training touches random rows; reading whole chunks once and keeping them (up to
    ``cache_bytes``) makes an epoch read each chunk once when the cache holds the store, and
    never more than the minibatch's chunks otherwise. ``chunk_reads`` counts chunks read.
    """

    def __init__(self, path: str | Path, *, device: str | torch.device = "cpu",
                 cache_bytes: int = CACHE_BYTES) -> None:
        import zarr

        self.path = Path(path)
        group = zarr.open_group(str(self.path), mode="r")
        self._features = group["features"]
        self._positions = group["positions"] if "positions" in group.array_keys() else None
        self.n_nodes, self.width = self._features.shape
        self.chunk_rows = int(self._features.chunks[0])
        row_bytes = 4 * (self.width + (0 if self._positions is None else self._positions.shape[1]))
        self.max_chunks = max(1, int(cache_bytes) // max(row_bytes * self.chunk_rows, 1))
        self.device = torch.device(device)
        self.positions = None
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self.chunk_reads = 0

    @contextlib.contextmanager
    def cached(self, diffusion, *, train: bool) -> Iterator[None]:
        """No epoch-wide evaluation: the features have no parameters and rows come from the store."""
        yield

    def _chunk(self, c: int) -> tuple[np.ndarray, np.ndarray | None]:
        if c in self._cache:
            self._cache.move_to_end(c)
            return self._cache[c]
        rows = slice(c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.n_nodes))
        value = (self._features[rows], None if self._positions is None else self._positions[rows])
        self.chunk_reads += 1
        self._cache[c] = value
        while len(self._cache) > self.max_chunks:
            self._cache.popitem(last=False)
        return value

    def _gather(self, index, which: int) -> torch.Tensor:
        """Rows ``index`` of features (``which=0``) or positions (1), chunk by chunk in chunk order."""
        idx = np.asarray(index.cpu() if torch.is_tensor(index) else index, dtype=np.int64)
        chunk = idx // self.chunk_rows
        width = self.width if which == 0 else self._positions.shape[1]
        out = np.empty((len(idx), width), dtype=np.float32)
        order = np.argsort(chunk, kind="stable")
        ids, starts = np.unique(chunk[order], return_index=True)
        for c, a, b in zip(ids, starts, np.append(starts[1:], len(idx))):
            sel = order[a:b]
            out[sel] = self._chunk(int(c))[which][idx[sel] - c * self.chunk_rows]
        return torch.from_numpy(out).to(self.device)

    def rows(self, index, diffusion=None) -> torch.Tensor:
        return self._gather(index, 0)

    def pos(self, index) -> torch.Tensor | None:
        return None if self._positions is None else self._gather(index, 1)

    def full(self, diffusion=None) -> torch.Tensor:
        """All rows (materialises ``N x E``; for small stores and tests)."""
        return self.rows(np.arange(self.n_nodes))

    def blocks(self, rows: int | None = None) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor | None]]:
        """``(node indices, features, positions)`` of consecutive row blocks (whole chunks), in order."""
        step = (rows or self.chunk_rows * 16) // self.chunk_rows * self.chunk_rows or self.chunk_rows
        for start in range(0, self.n_nodes, step):
            index = np.arange(start, min(start + step, self.n_nodes))
            yield index, self.rows(index), self.pos(index)


def feature_source(geometry, config: FeatureConfig, *, device: str | torch.device = "cpu",
                   store: str | Path | None = None) -> FeatureSource:
    """The feature source of ``geometry``: read by row from the zarr store ``store`` (written there
    condition by condition, or reused if it holds these features), or in memory when ``store`` is None.

    Why: the estimator's one call for both; a store needs features without parameters (no diffusion).
    """
    if store is None:
        return build_feature_source(geometry, config, device=device)
    if config.diffusion:
        raise ValueError(
            f"store={str(store)!r}: features with diffusion depend on the learnable diffusion time and "
            "cannot be stored; use diffusion=False to train from a feature store, or no store."
        )
    return StoredFeatures(open_or_write(store, geometry, config), device=torch.device(device))


def check_store_option(value, diffusion: bool) -> None:
    """Raise a clear error for a ``feature_store`` that is not None, "auto" or a path, or a path with diffusion."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"feature_store must be None (RAM), 'auto' or a folder path; got {value!r}.")
    if diffusion:
        raise ValueError(
            f"feature_store={str(value)!r} needs diffusion=False: with diffusion the features depend on the "
            "learnable diffusion time and cannot be stored. Set diffusion=False or feature_store=None."
        )


def resolve_store(value, geometry, config: FeatureConfig, owner: object) -> Path | None:
    """Where a model's features live: None (RAM), the path given, or a temporary store for ``"auto"``.

    ``"auto"`` stores only when :func:`needs_store`; the temporary folder is removed when ``owner``
    (the model) is garbage collected, or when it asks for a new one (refit).
    """
    if value is None or config.diffusion:
        return None
    if not (isinstance(value, str) and value == "auto"):
        return Path(value)
    previous = _TEMPORARY.pop(owner, None)
    if previous is not None:
        previous()  # a refit replaces the old temporary store
    if not needs_store(geometry, config):
        return None
    folder = tempfile.mkdtemp(prefix="marble-features-")
    _TEMPORARY[owner] = weakref.finalize(owner, shutil.rmtree, folder, True)
    return Path(folder) / "features.zarr"


@torch.no_grad()
def embed_stored(network, path: str | Path, device: str | torch.device = "cpu") -> np.ndarray:
    """Embeddings ``(N, out_dim)`` of every stored node, block by block (eval mode; never all features at once)."""
    source = StoredFeatures(path, device=device)
    network.eval()
    return np.concatenate([network(f, p).cpu().numpy() for _, f, p in source.blocks()])
