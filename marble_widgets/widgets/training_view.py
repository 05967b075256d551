"""TrainingView: MARBLE's training curves drawn in the browser, live during ``fit`` or from a history.

Why: the loss, learning rate and diffusion time per epoch are what tells whether a fit worked; the
view receives them as small binary buffers (a few KB for hundreds of epochs), throttled while
training, and ``static/training_view.js`` draws them with plotly.js, marking the best epoch.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import traitlets
import xarray as xr

from marble_widgets.engine.config import EPOCH_KEYS, HISTORY_KEYS
from marble_widgets.plotting.common import require_vars
from marble_widgets.widgets.flow_view import STATIC, PlotlyLibrary, plotly_library, unpack
from marble_widgets.widgets.page import THEME, esm_source, exported_buffers, pack_all, page_view, write_page

#: Per-epoch series the view draws (``diffusion_time`` is NaN for models without diffusion).
SERIES = HISTORY_KEYS
DTYPES = {name: "float64" for name in ("epoch", *SERIES)}


class TrainingView(anywidget.AnyWidget):
    """Train/val loss, learning rate and diffusion time per epoch, the best epoch marked.

    Live: display it, then ``model.fit(flow_field, callback=view)``: every call appends one epoch
    and the page is updated at most every ``throttle_s`` seconds (always on the first and last); the
    call returns None, or True once the page's Stop button was clicked (``fit`` then stops).
    Finished: :meth:`from_history` / :meth:`from_model`. The best epoch is ``best_epoch`` when
    given (``model.best_epoch_``), else the lowest validation loss so far.

    Synced: ``best_epoch`` (-1: none yet), ``n_epochs``, ``status``, ``finished`` (Python -> page;
    the Stop button is disabled once finished) and ``stop_requested`` (page -> Python). CSS: root ``mw-training-view``.
    """

    _esm = esm_source("training_view.js")
    _css = STATIC / "views.css"

    best_epoch = traitlets.Int(-1).tag(sync=True)
    n_epochs = traitlets.Int(0).tag(sync=True)
    status = traitlets.Unicode("waiting for the first epoch").tag(sync=True)
    stop_requested = traitlets.Bool(False).tag(sync=True)
    finished = traitlets.Bool(False).tag(sync=True)
    epochs_seen = traitlets.Int(0)
    _arrays = traitlets.Dict().tag(sync=True)
    _meta = traitlets.Dict().tag(sync=True)
    _plotly = traitlets.Instance(PlotlyLibrary).tag(sync=True, **widgets.widget_serialization)

    def __init__(self, n_epochs: int | None = None, *, throttle_s: float = 0.2, title: str = "Training",
                 best_epoch: int | None = None) -> None:
        if throttle_s < 0:
            raise ValueError(f"throttle_s must be >= 0 seconds; got {throttle_s}.")
        if n_epochs is not None and int(n_epochs) < 1:
            raise ValueError(f"n_epochs must be a positive number of epochs (or None); got {n_epochs}.")
        self.throttle_s = float(throttle_s)
        self._fixed_best = None if best_epoch is None else int(best_epoch)
        self._records: dict[str, list[float]] = {k: [] for k in ("epoch", *SERIES)}
        self._last_sent = -np.inf
        self._sent = 0
        super().__init__(_meta={"title": str(title), "theme": THEME}, _plotly=plotly_library(),
                         n_epochs=int(n_epochs or 0))
        self.add_class("mw-training-view")
        self.flush()

    # --- building from a finished fit --------------------------------------------------------------
    @classmethod
    def from_history(cls, history: xr.Dataset, *, best_epoch: int | None = None, **kwargs: Any) -> TrainingView:
        """A finished view of ``model.loss_history_`` (``best_epoch``: ``model.best_epoch_``)."""
        if not isinstance(history, xr.Dataset):
            raise TypeError(f"history must be MARBLE.loss_history_ (an xarray.Dataset on epoch); "
                            f"got {type(history).__name__}.")
        require_vars(history, ("train_loss", "val_loss", "lr"), "history",
                     "MARBLE.loss_history_: a Dataset on epoch with train_loss, val_loss, lr")
        n = history.sizes["epoch"]
        view = cls(n_epochs=max(n, 1), throttle_s=0.0, best_epoch=best_epoch, **kwargs)
        epochs = history["epoch"].values if "epoch" in history.coords else np.arange(n)
        nan = np.full(n, np.nan)
        values = {k: history[k].values.astype(np.float64) if k in history else nan for k in SERIES}
        for j, epoch in enumerate(epochs):
            view._record({"epoch": int(epoch), **{k: values[k][j] for k in SERIES}})
        view.flush(finished=True)
        return view

    @classmethod
    def from_model(cls, model: Any, **kwargs: Any) -> TrainingView:
        """:meth:`from_history` of a fitted model's ``loss_history_`` and ``best_epoch_``."""
        history = getattr(model, "loss_history_", None)
        if not isinstance(history, xr.Dataset):
            raise ValueError("model has no loss_history_: fit it first (or pass callback=TrainingView() to fit).")
        best = getattr(model, "best_epoch_", None)
        return cls.from_history(history, best_epoch=None if best is None else int(best), **kwargs)

    # --- live --------------------------------------------------------------------------------------
    def __call__(self, info: dict[str, Any]) -> bool | None:
        """Record one epoch of ``MARBLE.fit``'s callback ``info``; True (stop) only after Stop was clicked."""
        missing = [k for k in ("epoch", "train_loss", "val_loss", "lr") if k not in info]
        if missing:
            raise ValueError(f"callback info lacks {missing}; MARBLE.fit passes {', '.join(EPOCH_KEYS)}. "
                             f"Got keys {sorted(info)}.")
        self._record(info)
        if info.get("n_epochs"):
            self.n_epochs = int(info["n_epochs"])
        last = self.n_epochs > 0 and int(info["epoch"]) + 1 >= self.n_epochs
        first = self._sent == 0
        if first or last or self.stop_requested or time.monotonic() - self._last_sent >= self.throttle_s:
            self.flush(finished=last or self.stop_requested, elapsed=info.get("elapsed"))
        return True if self.stop_requested else None

    def callback(self, info: dict[str, Any]) -> bool | None:
        """Same as calling the view (``fit(ff, callback=view.callback)`` reads well too)."""
        return self(info)

    def _record(self, info: dict[str, Any]) -> None:
        self._records["epoch"].append(float(info["epoch"]))
        for k in SERIES:
            self._records[k].append(float(info.get(k, np.nan)) if info.get(k) is not None else np.nan)
        self.epochs_seen = len(self._records["epoch"])

    def flush(self, *, finished: bool = False, elapsed: float | None = None) -> None:
        """Send every recorded epoch to the page now (called by the callback, throttled)."""
        rec = {k: np.asarray(v, dtype=np.float64) for k, v in self._records.items()}
        val = rec["val_loss"]
        best = self._fixed_best
        if best is None:
            best = int(rec["epoch"][np.nanargmin(val)]) if np.isfinite(val).any() else -1
        with self.hold_sync():
            self.finished = bool(finished)
            self._arrays = pack_all(rec, DTYPES)
            self.best_epoch = best
            self.status = self._status(rec, finished, elapsed)
        self._sent = rec["epoch"].size
        self._last_sent = time.monotonic()

    def _status(self, rec: dict[str, np.ndarray], finished: bool, elapsed: float | None) -> str:
        n = rec["epoch"].size
        if not n:
            return "waiting for the first epoch"
        head = "stopped at epoch" if self.stop_requested else ("finished:" if finished else "epoch")
        count = f"{n} epochs" if finished and not self.stop_requested else f"{n}/{self.n_epochs or '?'}"
        text = f"{head} {count} · train {rec['train_loss'][-1]:.4g} · val {rec['val_loss'][-1]:.4g}"
        return text + (f" · {elapsed:.1f} s" if elapsed else "")

    def reset(self) -> None:
        """Forget every epoch and the stop request, to watch another fit."""
        self._records = {k: [] for k in ("epoch", *SERIES)}
        self.stop_requested = False
        self.epochs_seen = 0
        self.flush()

    # --- reading back --------------------------------------------------------------------------------
    @property
    def drawn_epochs(self) -> int:
        """Epochs sent to the page (lags ``epochs_seen`` while throttled)."""
        return self._sent

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-epoch arrays as the page received them."""
        return {name: unpack(entry) for name, entry in self._arrays.items()}

    @property
    def history(self) -> xr.Dataset:
        """The recorded epochs as a Dataset on ``epoch`` (like ``MARBLE.loss_history_``)."""
        rec = self._records
        return xr.Dataset({k: ("epoch", np.asarray(rec[k], dtype=np.float64)) for k in SERIES},
                          coords={"epoch": np.asarray(rec["epoch"], dtype=np.int64)})

    # --- export ---------------------------------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """The page's state as JSON-safe values (buffers compressed, base64)."""
        return {"best_epoch": self.best_epoch, "n_epochs": self.n_epochs, "status": self.status,
                "stop_requested": False, "finished": True, "_meta": {**self._meta, "exported": True},
                "_arrays": exported_buffers(self.arrays(), DTYPES)}

    def to_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write one self-contained HTML file showing the curves (hover and zoom work offline)."""
        return write_page(path, title or self._meta["title"], [page_view("training", self)])
