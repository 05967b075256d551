"""Where dask work runs: the local schedulers accepted, the runner check, and progress on finished tasks.

Why: the geometry's per-condition stages (``build_geometry(client=, scheduler=)``) and the per-session
fits (``marble_widgets.sessions``) take the same runners and report progress the same way.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

#: dask's local schedulers accepted as ``scheduler=``
SCHEDULERS = ("threads", "processes", "synchronous", "sync")


def check_runner(client: Any, scheduler: str | None) -> None:
    """Raise a clear error for a bad ``client``/``scheduler`` pair (both None: run here, serially)."""
    if client is not None and scheduler is not None:
        raise ValueError("pass either client= (a dask.distributed.Client) or scheduler=, not both.")
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS} or None (serial); got {scheduler!r}.")
    if client is not None and not (hasattr(client, "compute") and hasattr(client, "scatter")):
        raise TypeError(f"client must be a dask.distributed.Client or None; got {type(client).__name__}.")


@contextmanager
def on_finished(keys: Collection[Any], report: Callable[[Any], None]) -> Iterator[None]:
    """Call ``report(key)`` whenever dask's local scheduler finishes a task whose key is in ``keys``."""
    from dask.callbacks import Callback

    def posttask(key, result, dsk, state, worker_id):
        if key in keys:
            report(key)

    with Callback(posttask=posttask):
        yield
