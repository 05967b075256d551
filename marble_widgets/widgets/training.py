"""TrainingMonitor: live loss curves, an epoch progress bar and a Stop button for ``MARBLE.fit``."""
from __future__ import annotations

import time
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets
import xarray as xr

from marble_widgets.plotting import loss_curves
from marble_widgets.widgets._base import HEIGHTS, controls_box, view

INFO_KEYS = ("epoch", "train_loss", "val_loss", "lr")


class TrainingMonitor(widgets.VBox):
    """Watch MARBLE train: display it, then ``model.fit(ff, callback=monitor.callback)``.

    ``callback(info)`` records the epoch and redraws at most every ``throttle_s`` seconds (and on
    the last epoch), so the plot never slows training; it returns True once Stop was clicked,
    which tells ``fit`` to stop early. State: ``stop_requested`` (bool), ``epochs_seen`` (int).
    CSS classes: ``mw-training-monitor``; view ``mw-train-loss``; ``mw-train-progress``,
    ``mw-train-stop``, ``mw-train-status``.
    """

    stop_requested = traitlets.Bool(False)
    epochs_seen = traitlets.Int(0)

    def __init__(self, n_epochs: int | None = None, *, throttle_s: float = 0.2, title: str = "Training") -> None:
        if throttle_s < 0:
            raise ValueError(f"throttle_s must be >= 0 seconds; got {throttle_s}.")
        self.throttle_s = float(throttle_s)
        self._records: dict[str, list[float]] = {k: [] for k in INFO_KEYS}
        self._last_draw = -np.inf
        self._drawn = 0
        self.loss_view = view(loss_curves(None, title=title), "mw-train-loss", height=HEIGHTS["2d"], in_panel=False)
        self.progress = widgets.IntProgress(value=0, min=0, max=max(int(n_epochs or 1), 1), description="epoch")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger")
        self.status = widgets.HTML("waiting for the first epoch")
        for w, css in ((self.progress, "mw-train-progress"), (self.stop_button, "mw-train-stop"),
                       (self.status, "mw-train-status")):
            w.add_class(css)
        self.stop_button.on_click(self._on_stop)
        self.stop_button.layout.width = "90px"
        bar = controls_box([self.progress, self.stop_button, self.status], "mw-train-controls")
        super().__init__([bar, self.loss_view])
        self.add_class("mw-training-monitor")

    @classmethod
    def from_history(cls, history: xr.Dataset, *, best_epoch: int | None = None, **kwargs: Any) -> TrainingMonitor:
        """A finished monitor showing ``model.loss_history_`` (no training attached).

        ``best_epoch`` (``model.best_epoch_``) is marked with a dashed line.
        """
        monitor = cls(n_epochs=history.sizes["epoch"], throttle_s=0.0, **kwargs)
        epochs = history["epoch"].values if "epoch" in history.coords else np.arange(history.sizes["epoch"])
        for j, epoch in enumerate(epochs):
            monitor._record({"epoch": int(epoch), **{k: float(history[k].values[j]) for k in INFO_KEYS[1:]}})
        monitor.flush()
        monitor.stop_button.disabled = True
        rec = monitor._records
        monitor.status.value = (f"finished: {len(epochs)} epochs · final train {rec['train_loss'][-1]:.4g} · "
                                f"val {rec['val_loss'][-1]:.4g}") if len(epochs) else "no epochs recorded"
        if best_epoch is not None:
            mark = loss_curves(history, best_epoch=int(best_epoch)).layout
            monitor.loss_view.layout.update(shapes=mark.shapes, annotations=mark.annotations,
                                            title_subtitle_text=mark.title.subtitle.text)
        return monitor

    def callback(self, info: dict[str, Any]) -> bool:
        """Record one epoch's ``info`` (keys of ``MARBLE.fit``'s callback); True asks fit to stop."""
        missing = [k for k in INFO_KEYS if k not in info]
        if missing:
            raise ValueError(f"callback info lacks {missing}; MARBLE.fit passes epoch, n_epochs, train_loss, "
                             f"val_loss, lr, diffusion_time, elapsed. Got keys {sorted(info)}.")
        self._record(info)
        n_epochs = info.get("n_epochs")
        if n_epochs:
            self.progress.max = int(n_epochs)
        last = bool(n_epochs) and int(info["epoch"]) + 1 >= int(n_epochs)
        now = time.monotonic()
        if last or self.stop_requested or now - self._last_draw >= self.throttle_s:
            self.flush()
        elapsed = info.get("elapsed")
        prefix = "stopped at epoch" if self.stop_requested else "epoch"
        self.status.value = (f"{prefix} {int(info['epoch']) + 1}/{n_epochs or '?'} · "
                             f"train {float(info['train_loss']):.4g} · val {float(info['val_loss']):.4g}"
                             + (f" · {elapsed:.1f} s" if elapsed else ""))
        return bool(self.stop_requested)

    def _record(self, info: dict[str, Any]) -> None:
        for k in INFO_KEYS:
            self._records[k].append(float(info[k]))
        self.epochs_seen = len(self._records["epoch"])
        self.progress.value = min(int(info["epoch"]) + 1, self.progress.max)

    def flush(self) -> None:
        """Redraw the curves with every recorded epoch now (called automatically, throttled)."""
        rec = {k: np.asarray(v, dtype=np.float64) for k, v in self._records.items()}
        with self.loss_view.batch_update():
            for trace, key in zip(self.loss_view.data, ("train_loss", "val_loss", "lr")):
                trace.update(x=rec["epoch"], y=rec[key])
        self._drawn = rec["epoch"].size
        self._last_draw = time.monotonic()

    @property
    def drawn_epochs(self) -> int:
        """How many epochs the figure currently shows (lags ``epochs_seen`` while throttled)."""
        return self._drawn

    @property
    def history(self) -> xr.Dataset:
        """The recorded epochs as a Dataset on ``epoch`` (train_loss, val_loss, lr)."""
        rec = self._records
        return xr.Dataset({k: ("epoch", np.asarray(rec[k])) for k in INFO_KEYS[1:]},
                          coords={"epoch": np.asarray(rec["epoch"], dtype=np.int64)})

    def _on_stop(self, _button: Any = None) -> None:
        self.stop_requested = True
        self.stop_button.disabled = True
        self.status.value = "stopping after this epoch…"

    def reset(self) -> None:
        """Clear the curves and the stop request, to monitor another fit."""
        self._records = {k: [] for k in INFO_KEYS}
        self.stop_requested = False
        self.stop_button.disabled = False
        self.progress.value = 0
        self.epochs_seen = 0
        self.flush()
