"""Many recording sessions as one labelled collection whose per-session work is a dask graph.

Why: an archive holds tens to hundreds of NWB sessions, local or on DANDI. :func:`open_sessions`
names them and builds, per session, a lazy chain read -> bin (``read_nwb``) -> smooth + PCA +
differences (``FlowFieldBuilder``, fitted on that session alone, so sessions with different
neurons each get their own preprocessing) -> MARBLE fit (:func:`fit_sessions`). Nothing is read
until a result is asked for; then dask runs the sessions in parallel: locally on its threaded
(``scheduler="threads"``) or synchronous (``"sync"``) scheduler when ``client=None``, or on any
``dask.distributed.Client`` (a ``LocalCluster``, SLURM, Kubernetes) with the same code.
Results come back as one xarray Dataset on a ``session`` dim. Seeded: each session's model seed
is derived from ``seed`` and the session's name, so a session gets the same embedding whatever
the scheduler, the worker or the other sessions in the call.
"""
from __future__ import annotations

import glob
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import xarray as xr

from marble_widgets.data import remote
from marble_widgets.data.errors import MarbleDataError
from marble_widgets.data.nwb import resolve_spelling
from marble_widgets.engine.runners import check_runner, on_finished

__all__ = ["Sessions", "open_sessions", "fit_sessions", "joint_flow_field", "session_embeddings", "session_seed"]

#: ``progress(name, n_done, n_total)``, called as each session's task finishes
Progress = Callable[[str, int, int], None]
_TORCH_LOCK = threading.Lock()
_TORCH_STATE = {"open": 0, "previous": 0}


# ----------------------------------------------------------------------------- the collection
class Sessions:
    """Named NWB sessions (paths or URLs) with lazy per-session reads, flow fields and fits.

    Build with :func:`open_sessions`. ``names`` label the ``session`` dim of every result;
    :attr:`info` is the per-session metadata table (``nwb_summary``, read on first access);
    :meth:`recordings` and :meth:`flow_fields` are ``{name: dask.delayed}`` mappings;
    :meth:`compute` evaluates such a mapping; :meth:`fit` fits one MARBLE model per session.
    """

    def __init__(self, names: Sequence[str], sources: Sequence[str], read_kw: Mapping[str, Any]) -> None:
        self.names = list(names)
        self.sources = list(sources)
        self.read_kw = dict(read_kw)
        self._info: xr.Dataset | None = None

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __repr__(self) -> str:
        rows = "\n".join(f"  {n}: {s}" for n, s in list(zip(self.names, self.sources))[:10])
        more = f"\n  ... ({len(self) - 10} more)" if len(self) > 10 else ""
        head = f"<Sessions: {len(self)} sessions, bin_size={self.read_kw['bin_size']} s, nothing read yet>"
        return f"{head}\n{rows}{more}"

    def sel(self, names: str | Sequence[str]) -> Sessions:
        """The sub-collection of the given session names (in that order)."""
        wanted = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in wanted if n not in self.names]
        if unknown:
            raise MarbleDataError(f"unknown session name(s) {unknown}; the collection has {self.names}.")
        index = [self.names.index(n) for n in wanted]
        return Sessions(wanted, [self.sources[i] for i in index], self.read_kw)

    # --------------------------------------------------------------------------- lazy stages
    def summaries(self) -> dict[str, Any]:
        """``{name: delayed nwb_summary}``: metadata only (units, behaviour, trials, time range)."""
        import dask

        from marble_widgets.data.nwb import nwb_summary

        remote_kw = {k: self.read_kw[k] for k in ("cache_dir", "storage_options")}
        return {n: dask.delayed(nwb_summary, pure=True)(s, **remote_kw) for n, s in zip(self.names, self.sources)}

    def recordings(self) -> dict[str, Any]:
        """``{name: delayed read_nwb(...)}``: each session binned on its own clock, read when computed."""
        import dask

        from marble_widgets.data.nwb import read_nwb

        return {n: dask.delayed(read_nwb, pure=True)(s, **self.read_kw) for n, s in zip(self.names, self.sources)}

    def flow_fields(
        self, preprocess: Callable[[xr.Dataset], xr.Dataset] | None = None, **builder: Any
    ) -> dict[str, Any]:
        """``{name: delayed flow field}``: smoothing, PCA and differences fitted per session.

        ``builder`` are :class:`~marble_widgets.data.flow.FlowFieldBuilder` parameters (``n_components``,
        ``smooth``, ``condition`` ...); ``preprocess(rec)`` (e.g. ``lambda r: r.marble.align()``)
        runs on each recording first. Each session gets its own PCA, so their unit counts may differ.
        """
        import dask

        from marble_widgets.data.flow import FlowFieldBuilder

        FlowFieldBuilder(**builder)  # unknown parameter names fail now, not inside a worker
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess must be a callable rec -> rec or None; got {type(preprocess).__name__}.")
        return {n: dask.delayed(_flow_field, pure=True)(rec, preprocess, builder)
                for n, rec in self.recordings().items()}

    # --------------------------------------------------------------------------- evaluation
    @property
    def info(self) -> xr.Dataset:
        """Per-session metadata on the ``session`` dim (read once, in parallel, on first access)."""
        if self._info is None:
            self._info = _info_table(self.compute(self.summaries()))
        return self._info

    def compute(self, tasks: Mapping[str, Any], *, client: Any = None, scheduler: str = "threads") -> dict[str, Any]:
        """Evaluate ``{name: delayed}`` on ``client`` (a ``dask.distributed.Client``) or dask's ``scheduler``."""
        return compute(tasks, client=client, scheduler=scheduler)

    def fit(self, estimator: Any = None, *, preprocess: Callable[[xr.Dataset], xr.Dataset] | None = None,
            **options: Any) -> xr.Dataset:
        """One MARBLE model per session: :meth:`flow_fields` then :func:`fit_sessions`.

        ``options`` named like :func:`fit_sessions`' keywords (``seed``, ``client``, ``scheduler``,
        ``torch_threads``, ``progress``) go to it; the rest are ``FlowFieldBuilder`` parameters.
        """
        import inspect

        fit_options = list(inspect.signature(fit_sessions).parameters)[2:]
        fit_kw = {name: options.pop(name) for name in fit_options if name in options}
        return fit_sessions(self.flow_fields(preprocess, **options), estimator, **fit_kw)

    def joint_flow_field(self, preprocess: Callable[[xr.Dataset], xr.Dataset] | None = None, *, client: Any = None,
                         scheduler: str = "threads", **builder: Any) -> xr.Dataset:
        """Every session's flow field (:meth:`flow_fields`, computed in parallel) in one joint flow
        field for a joint model; see :func:`joint_flow_field`."""
        return joint_flow_field(self.flow_fields(preprocess, **builder), client=client, scheduler=scheduler)


# ----------------------------------------------------------------------------- opening
def open_sessions(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    bin_size: float = 0.02,
    *,
    names: Sequence[str] | None = None,
    t_start: float | None = None,
    t_stop: float | None = None,
    behaviour: bool = True,
    cache_dir: str | os.PathLike | None = None,
    storage_options: Mapping[str, Any] | None = None,
    behavior: bool | None = None,
) -> Sessions:
    """Collect NWB sessions (a folder, a glob, or a list of paths/URLs) without reading any of them.

    Why: one object to hand many sessions to preprocessing and fitting, local or remote, with
    every step a dask task. Names default to the file stems (they must be distinct; pass
    ``names`` otherwise). ``bin_size``, ``t_start``, ``t_stop``, ``behaviour``, ``cache_dir`` and
    ``storage_options`` are :func:`~marble_widgets.data.nwb.read_nwb`'s, applied to every session.
    Local paths are only checked to exist; URLs are not contacted until something is computed.
    """
    number = isinstance(bin_size, (int, float, np.integer, np.floating)) and not isinstance(bin_size, bool)
    if not number or not np.isfinite(bin_size) or bin_size <= 0:
        raise MarbleDataError(f"bin_size must be a finite positive number of seconds (e.g. 0.02); got {bin_size!r}.")
    paths = _expand(sources)
    labels = [_stem(p) for p in paths] if names is None else [str(n) for n in names]
    if len(labels) != len(paths):
        raise MarbleDataError(f"names has {len(labels)} entries but {len(paths)} sessions were found; "
                              "pass one name each.")
    duplicates = sorted({n for n in labels if labels.count(n) > 1})
    if duplicates:
        raise MarbleDataError(f"session names must be distinct; {duplicates} occur more than once "
                              "(same file stem in different folders?). Pass names=[...] explicitly.")
    read_kw = {"bin_size": float(bin_size), "t_start": t_start, "t_stop": t_stop, "behaviour": resolve_spelling(behaviour, behavior),
               "cache_dir": None if cache_dir is None else str(cache_dir),
               "storage_options": None if storage_options is None else dict(storage_options)}
    return Sessions(labels, paths, read_kw)


def _expand(sources: Any) -> list[str]:
    """Paths/URLs of the sessions: a folder's *.nwb, a glob's matches, or the given list (checked)."""
    if isinstance(sources, (str, os.PathLike)):
        text = os.fspath(sources)
        if remote.is_url(text):
            return [remote.check_url(text)]
        if Path(text).is_dir():
            found = sorted(str(p) for p in Path(text).glob("*.nwb"))
            if not found:
                raise MarbleDataError(f"folder {text!r} holds no *.nwb files; pass a folder of NWB files or a glob.")
            return found
        if glob.has_magic(text):
            found = sorted(glob.glob(text))
            if not found:
                raise MarbleDataError(f"the pattern {text!r} matches no files; check it (e.g. 'data/*.nwb').")
            return [_checked(p) for p in found]
        return [_checked(text)]
    if not isinstance(sources, Sequence) or isinstance(sources, bytes) or len(sources) == 0:
        raise TypeError("sources must be a folder, a glob pattern, a path/URL, or a non-empty list of paths/URLs; "
                        f"got {type(sources).__name__}.")
    return [_checked(s) for s in sources]


def _checked(source: Any) -> str:
    """A URL (scheme checked, not contacted) or the path of an existing local file, as a str."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"each session must be a path or an http(s) URL; got {type(source).__name__}.")
    text = os.fspath(source)
    if remote.is_url(text):
        return remote.check_url(text)
    if not Path(text).is_file():
        raise MarbleDataError(f"session file {text!r} does not exist (or is not a file); check the path.")
    return str(Path(text).resolve())


def _stem(source: str) -> str:
    """A session's default name: the file name without extension (URLs: the last path segment,
    skipping a trailing ``download`` so that DANDI asset URLs are named by their asset id)."""
    if remote.is_url(source):
        parts = [p for p in PurePosixPath(source.split("?")[0].split("://", 1)[1]).parts[1:] if p]
        if len(parts) > 1 and parts[-1] == "download":
            parts = parts[:-1]
        return PurePosixPath(parts[-1]).stem if parts else source
    return Path(source).stem


# ----------------------------------------------------------------------------- tasks (run on workers)
def _flow_field(rec: xr.Dataset, preprocess: Callable | None, builder: dict[str, Any]) -> xr.Dataset:
    """One session's flow field, its preprocessing fitted on that session alone."""
    from marble_widgets.data.flow import FlowFieldBuilder

    if preprocess is not None:
        rec = preprocess(rec)
    return FlowFieldBuilder(**builder).fit_transform(rec)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads while any fit of this process needs it, then restore.

    Why: float reductions split over a different number of threads can round differently, so
    equal seeds give identical embeddings only on equal thread counts (serial vs a worker).
    """
    import torch

    if n is None:
        yield
        return
    with _TORCH_LOCK:
        if _TORCH_STATE["open"] == 0:
            _TORCH_STATE["previous"] = torch.get_num_threads()
            torch.set_num_threads(int(n))
        _TORCH_STATE["open"] += 1
    try:
        yield
    finally:
        with _TORCH_LOCK:
            _TORCH_STATE["open"] -= 1
            if _TORCH_STATE["open"] == 0:
                torch.set_num_threads(_TORCH_STATE["previous"])


def _fit_one(flow_field: xr.Dataset, params: dict[str, Any], seed: int, torch_threads: int | None) -> dict[str, Any]:
    """Fit MARBLE(**params, seed=seed) on one session's flow field; its embedding and scores."""
    from marble_widgets.estimator import MARBLE

    with _torch_threads(torch_threads):
        start, cpu = time.perf_counter(), time.thread_time()
        model = MARBLE(**{**params, "seed": int(seed), "verbose": False}).fit(flow_field)
        embedding = model.transform(flow_field)
        seconds, cpu = time.perf_counter() - start, time.thread_time() - cpu
    best = model.loss_history_.isel(epoch=model.best_epoch_)
    return {"embedding": embedding, "seed": int(seed), "fit_seconds": seconds, "fit_cpu_seconds": cpu,
            "best_epoch": model.best_epoch_,
            "n_epochs": model.loss_history_.sizes["epoch"], "train_loss": float(best["train_loss"]),
            "val_loss": float(best["val_loss"])}


# ----------------------------------------------------------------------------- fitting
def session_seed(seed: int, name: str) -> int:
    """The model seed of session ``name``: ``seed`` mixed with a checksum of the name (stable across runs)."""
    return int((int(seed) * 1_000_003 + zlib.crc32(str(name).encode())) % (2**31 - 1))


def fit_sessions(
    flow_fields: Mapping[str, Any] | Sessions,
    estimator: Any = None,
    *,
    seed: int = 0,
    client: Any = None,
    scheduler: str = "threads",
    torch_threads: int | None = 1,
    progress: Progress | bool | None = None,
) -> xr.Dataset:
    """Fit one MARBLE model per session as dask tasks; embeddings and scores in one Dataset.

    Why: per-session fits are independent, so they spread over threads, processes or a cluster.
    ``flow_fields`` maps session names to flow fields (Datasets or dask delayed ones, e.g.
    :meth:`Sessions.flow_fields`); a :class:`Sessions` uses its default flow fields.
    ``estimator`` (an unfitted ``MARBLE``, default ``MARBLE()``) gives the hyper-parameters;
    session ``s`` is fitted with ``seed=session_seed(seed, s)`` and ``verbose=False``.
    ``client=None`` runs on dask's local ``scheduler`` ("threads": one process, fits in parallel
    threads; "sync": one after another; "processes"); a ``dask.distributed.Client`` runs the same
    tasks on its workers. ``torch_threads`` fixes torch's intra-op threads per fit (None: leave).
    ``progress=True`` shows a bar across sessions (a callable ``(name, n_done, n_total)`` is called instead).

    Returns
    -------
    xarray.Dataset
        ``embedding`` (session, sample, latent), NaN-padded past each session's ``n_samples``;
        sample coords (session, sample): ``condition``/``trial``/``time`` and every other 1-D
        sample coord all sessions' embeddings carry (e.g. ``position``), padded "" / -1 / NaN;
        per session: ``n_samples``, ``seed``, ``best_epoch``, ``n_epochs``, ``train_loss`` and
        ``val_loss`` (at the best epoch), ``fit_seconds`` (wall) and ``fit_cpu_seconds`` (CPU time
        of the fitting thread; torch on one thread computes there). attrs: ``params`` (JSON), ``seed``.
    """
    import dask

    if isinstance(flow_fields, Sessions):
        flow_fields = flow_fields.flow_fields()
    if not isinstance(flow_fields, Mapping) or not flow_fields:
        raise TypeError("flow_fields must be a non-empty mapping {session name: flow field (or delayed)}, or Sessions.")
    params = _estimator_params(estimator)
    # pure=False: fresh keys, so no hashing of every flow field's arrays before the first fit can start
    tasks = {str(name): dask.delayed(_fit_one, pure=False)(ff, params, session_seed(seed, str(name)), torch_threads)
             for name, ff in flow_fields.items()}
    results = compute(tasks, client=client, scheduler=scheduler, progress=progress,
                      priorities=_sample_counts(flow_fields))
    out = _results_dataset(results)
    out.attrs.update(params=json.dumps(params, default=str), seed=int(seed))
    return out


def joint_flow_field(flow_fields: Mapping[str, Any], *, client: Any = None, scheduler: str = "threads") -> xr.Dataset:
    """Many sessions' flow fields stacked into one, conditions labelled per session, for a joint model.

    Why: a joint MARBLE model embeds all sessions in one latent space; its graph still never joins
    two conditions, so ``MARBLE(...).fit(joint, client=client)`` builds the geometry condition by
    condition on the same dask runner. ``flow_fields`` maps session names to flow fields (Datasets
    or dask delayed ones, computed on ``client``/``scheduler`` as in :func:`compute`). Stacked by
    :func:`~marble_widgets.data.containers.combine_flow_fields` on a ``session`` coordinate: a
    session with one condition takes its name as the condition, others become ``"<session>/<condition>"``.
    The sessions must share their ``dim`` coordinate (e.g. the same number of PCs).
    """
    from dask import is_dask_collection

    from marble_widgets.data.containers import combine_flow_fields

    if not isinstance(flow_fields, Mapping) or not flow_fields:
        raise TypeError("flow_fields must be a non-empty mapping {session name: flow field (or delayed)}.")
    names = [str(n) for n in flow_fields]
    lazy = {n: ff for n, ff in zip(names, flow_fields.values()) if is_dask_collection(ff)}
    done = compute(lazy, client=client, scheduler=scheduler) if lazy else {}
    return combine_flow_fields({n: done.get(n, ff) for n, ff in zip(names, flow_fields.values())}, dim="session")


def compute(tasks: Mapping[str, Any], *, client: Any = None, scheduler: str = "threads",
            progress: Progress | bool | None = None,
            priorities: Mapping[str, int] | None = None) -> dict[str, Any]:
    """``{name: value}`` of ``{name: delayed}``, on ``client`` or on dask's local ``scheduler``.

    ``progress(name, n_done, n_total)`` is called as each named task finishes (``True``: a
    progress bar, see :func:`progress_bar`). ``priorities`` (``{name: int}``, higher first) order
    the tasks on a ``client``: largest first, so that no worker is left with a long task at the end.
    """
    import dask

    names = list(tasks)
    report = progress_bar(len(names)) if progress is True else progress or None
    check_runner(client, None if client is not None else scheduler)  # a client replaces the local scheduler
    if client is None:
        with _local_progress(tasks, report):
            values = dask.compute(*tasks.values(), scheduler=scheduler)
        return dict(zip(names, values))
    if priorities:  # submitted highest first (a worker starts the first one it gets), each with its priority
        first = sorted(names, key=lambda n: -int(priorities.get(n, 0)))
        submitted = {n: client.compute(tasks[n], priority=int(priorities.get(n, 0))) for n in first}
        futures = [submitted[n] for n in names]
    else:
        futures = client.compute(list(tasks.values()))
    if report is not None:
        from distributed import as_completed

        name_of = {f.key: n for f, n in zip(futures, names)}
        for done, future in enumerate(as_completed(futures), start=1):
            report(name_of[future.key], done, len(names))
    return dict(zip(names, client.gather(futures)))


@contextmanager
def _local_progress(tasks: Mapping[str, Any], report: Progress | None) -> Iterator[None]:
    """Call ``report`` from dask's local scheduler whenever one of ``tasks``' final keys finishes."""
    if report is None:
        yield
        return
    name_of = {task.key: name for name, task in tasks.items()}
    done: list[str] = []

    def finished(key: Any) -> None:
        done.append(name_of[key])
        report(name_of[key], len(done), len(name_of))

    with on_finished(name_of, finished):
        yield


def progress_bar(total: int, description: str = "sessions") -> Progress:
    """A progress reporter: an ipywidgets bar in a notebook, one printed line per task elsewhere."""
    try:
        from IPython import get_ipython

        in_kernel = get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except ImportError:
        in_kernel = False
    if not in_kernel:
        return lambda name, done, n: print(f"{description}: {done}/{n} done ({name})", flush=True)
    import ipywidgets as widgets
    from IPython.display import display

    bar = widgets.IntProgress(value=0, min=0, max=total, description=description)
    label = widgets.Label(f"0/{total}")
    display(widgets.HBox([bar, label]))

    def update(name: str, done: int, n: int) -> None:
        bar.value, label.value = done, f"{done}/{n} · last: {name}"
        if done == n:
            bar.bar_style = "success"
    return update


def _estimator_params(estimator: Any) -> dict[str, Any]:
    """Hyper-parameters of an unfitted MARBLE (defaults when None); seed/verbose are set per fit."""
    from marble_widgets.estimator import MARBLE

    if estimator is None:
        estimator = MARBLE()
    if not isinstance(estimator, MARBLE):
        raise TypeError(f"estimator must be a marble_widgets.MARBLE (or None); got {type(estimator).__name__}.")
    return {k: v for k, v in estimator.get_params().items() if k not in ("seed", "verbose")}


def session_embeddings(results: xr.Dataset) -> dict[str, xr.DataArray]:
    """``{session: embedding (sample, latent)}`` of a :func:`fit_sessions` result, padding dropped.

    Why: the analysis functions (``consistency``, ``procrustes_align``, ``distances``) take one
    embedding per session with its sample coords (``condition``, ``time``, behaviour such as
    ``position``), as ``MARBLE.transform`` returns them.
    """
    if not isinstance(results, xr.Dataset) or not {"embedding", "n_samples"} <= set(results.data_vars):
        raise TypeError("results must be the Dataset returned by fit_sessions (with 'embedding' and 'n_samples').")
    out = {}
    for name in results["session"].values:
        row = results.sel(session=name)
        emb = row["embedding"].isel(sample=slice(0, int(row["n_samples"]))).drop_vars("session")
        out[str(name)] = emb.assign_coords(sample=emb["sample"].values) if "sample" in emb.coords else emb
    return out


def _padded(columns: list[np.ndarray], n_max: int) -> np.ndarray:
    """Stack per-session 1-D columns into (session, n_max), padded with "" / -1 / NaN by kind."""
    kind = columns[0].dtype.kind
    fill, dtype = {"U": ("", object), "S": ("", object), "O": ("", object), "i": (-1, np.int64),
                   "u": (-1, np.int64), "b": (False, bool)}.get(kind, (np.nan, np.float64))
    out = np.full((len(columns), n_max), fill, dtype=dtype)
    for i, col in enumerate(columns):
        out[i, :col.size] = col.astype(str) if dtype is object else col
    return out.astype(str) if dtype is object else out


def _sample_coords(embeddings: list[xr.DataArray], n_max: int) -> dict[str, tuple[tuple[str, str], np.ndarray]]:
    """Every 1-D sample coord that all sessions carry (condition, trial, time, behaviour), padded."""
    shared = [name for name, c in embeddings[0].coords.items() if c.dims == ("sample",)
              and all(name in e.coords and e[name].dims == ("sample",) for e in embeddings)]
    return {name: (("session", "sample"), _padded([e[name].values for e in embeddings], n_max)) for name in shared}


def _sample_counts(flow_fields: Mapping[str, Any]) -> dict[str, int]:
    """Samples of each session whose flow field is already computed (a delayed one counts 0)."""
    return {str(name): int(ff.sizes.get("sample", 0)) if isinstance(ff, xr.Dataset) else 0
            for name, ff in flow_fields.items()}


def _results_dataset(results: dict[str, dict[str, Any]]) -> xr.Dataset:
    """Stack per-session results on a ``session`` dim, padding samples to the longest session."""
    names = list(results)
    embeddings = [results[n]["embedding"] for n in names]
    n_max, n_latent = max(e.sizes["sample"] for e in embeddings), embeddings[0].sizes["latent"]
    z = np.full((len(names), n_max, n_latent), np.nan)
    for i, e in enumerate(embeddings):
        z[i, :e.sizes["sample"]] = e.values
    keys = ("seed", "best_epoch", "n_epochs", "train_loss", "val_loss", "fit_seconds", "fit_cpu_seconds")
    per_session = {key: ("session", np.array([results[n][key] for n in names])) for key in keys}
    return xr.Dataset(
        {"embedding": (("session", "sample", "latent"), z),
         "n_samples": ("session", np.array([e.sizes["sample"] for e in embeddings])), **per_session},
        coords={"session": names, "latent": np.arange(n_latent), **_sample_coords(embeddings, n_max)},
    )


def _info_table(summaries: dict[str, dict[str, Any]]) -> xr.Dataset:
    """The per-session metadata table from ``nwb_summary`` dicts (str/int/float columns only)."""
    names = list(summaries)
    text = ("source", "identifier", "session_id", "subject_id", "species", "session_start_time")
    columns: dict[str, tuple[str, np.ndarray]] = {
        key: ("session", np.array([str(summaries[n].get(key, "")) for n in names])) for key in text}
    columns["n_units"] = ("session", np.array([int(summaries[n]["n_units"]) for n in names]))
    columns["n_trials"] = ("session", np.array([(summaries[n]["trials"] or {"n": 0})["n"] for n in names]))
    columns["n_behavior_series"] = ("session", np.array([len(summaries[n]["behavior"]) for n in names]))
    columns["t_start"] = ("session", np.array([summaries[n]["time_range"][0] for n in names], dtype=float))
    columns["t_stop"] = ("session", np.array([summaries[n]["time_range"][1] for n in names], dtype=float))
    return xr.Dataset(columns, coords={"session": names})
