"""EmbeddingExplorer: colour, click and box/lasso-select the embedding; see the same samples elsewhere."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets
import xarray as xr

from marble_widgets.plotting import DensityGrid, behaviour, density_figure, embedding_scatter, raster, trajectories
from marble_widgets.plotting.common import (
    check_sample, default_color_key, marker_color, pick_dims, require_dims, require_vars, sample_keys, sample_values,
)
from marble_widgets.plotting.embedding import density_image
from marble_widgets.plotting.state_space import FLOW_HINT
from marble_widgets.widgets._base import HEIGHTS, controls_box, grid, overlay_trace, set_points, view, view_panel


def points_in_box(points: np.ndarray, xrange: Sequence[float], yrange: Sequence[float]) -> np.ndarray:
    """Indices of 2-D ``points`` inside the axis-aligned box (UI hit-testing for the fast path)."""
    (x0, x1), (y0, y1) = sorted(xrange), sorted(yrange)
    inside = (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
    return np.flatnonzero(inside)


def points_in_lasso(points: np.ndarray, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """Indices of 2-D ``points`` inside the polygon (xs, ys) by even-odd ray casting."""
    px, py = points[:, 0], points[:, 1]
    vx, vy = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    inside = np.zeros(px.size, dtype=bool)
    for k in range(vx.size):
        x0, y0, x1, y1 = vx[k - 1], vy[k - 1], vx[k], vy[k]
        crosses = (y0 > py) != (y1 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xcross = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (px < xcross)
    return np.flatnonzero(inside)


def trajectory_subset(flow_field: xr.Dataset, max_samples: int) -> np.ndarray:
    """Sample indices of whole (condition, trial) trajectories, evenly spread, about ``max_samples`` in all.

    Why: above the fast-path size the state view shows a readable, quickly redrawn subset of
    trajectories (moving the current-point marker redraws every trace of a plotly figure).
    """
    keys = np.char.add(np.char.add(flow_field["condition"].values.astype(str), "|"),
                       flow_field["trial"].values.astype(str))
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    n_keep = int(np.clip(max_samples // max(float(counts.mean()), 1.0), 1, counts.size))
    chosen = np.unique(np.linspace(0, counts.size - 1, n_keep).round().astype(np.int64))
    return np.flatnonzero(np.isin(inverse, chosen))


def behaviour_keys(flow_field: xr.Dataset) -> list[str]:
    """Behaviour variables carried per sample by the flow field (everything but x and v)."""
    return [str(k) for k, da in flow_field.data_vars.items() if k not in ("x", "v") and da.dims[:1] == ("sample",)]


class EmbeddingExplorer(widgets.VBox):
    """Embedding scatter linked to state space, behaviour over time and (optionally) the raster.

    Colour by any sample coord or behaviour variable; box/lasso selections set ``selection``
    (sample indices), highlighted in every view; a click sets ``sample`` (link it to a
    :class:`FlowFieldExplorer` with :func:`link_explorers`). Above ``max_points`` samples the
    embedding uses the density-image fast path (selection is then hit-tested on all samples) and
    the state view draws an even subset of whole trajectories (about ``max_points // 5`` samples;
    the selection and current-point overlays still show every sample).
    CSS classes: ``mw-embedding-explorer``; views ``mw-emb-embedding``, ``mw-emb-state``,
    ``mw-emb-behaviour``, ``mw-emb-raster``; controls ``mw-emb-controls``, ``mw-emb-color``.
    """

    selection = traitlets.List(traitlets.Int())
    sample = traitlets.Int(0)
    color_by = traitlets.Unicode("condition")

    def __init__(self, embedding: xr.DataArray, flow_field: xr.Dataset, recording: xr.Dataset | None = None,
                 *, color_by: str | None = None, behaviour_var: str | None = None, max_points: int = 50_000,
                 bins: int = 200, dims: int | None = None) -> None:
        require_dims(embedding, ("sample", "latent"), "embedding", "MARBLE.transform output")
        require_vars(flow_field, ("x", "v"), "flow_field", FLOW_HINT)
        if embedding.sizes["sample"] != flow_field.sizes["sample"]:
            raise ValueError(f"embedding has {embedding.sizes['sample']} samples but flow_field has "
                             f"{flow_field.sizes['sample']}; pass the flow field that was embedded.")
        self._ff, self._emb = flow_field, embedding.values[:, :2].astype(np.float64)
        self._x = flow_field["x"].values
        self._n_dims = pick_dims(self._x.shape[1], dims)
        self._time, self._trial = flow_field["time"].values.astype(np.float64), flow_field["trial"].values
        self.color_options = sample_keys(flow_field)
        self.color_by = color_by if color_by is not None else (default_color_key(flow_field) or "condition")
        self.grid = DensityGrid(self._emb, bins) if self._emb.shape[0] > max_points else None
        self._max_state = max(max_points // 5, 1)  # fast path: samples of the state view's trajectory subset
        keys = behaviour_keys(flow_field)
        self._behaviour_var = behaviour_var if behaviour_var is not None else (keys[0] if keys else None)
        self._build_views(embedding, recording)
        self._build_controls()
        super().__init__([self.controls, grid(self._panels, 2)])
        self.add_class("mw-embedding-explorer")
        self.observe(self._on_selection, "selection")
        self.observe(self._on_sample, "sample")
        self.observe(self._on_color, "color_by")
        self._redraw_current(self.sample)

    # --- construction -----------------------------------------------------------------------
    def _check_color(self, key: str) -> str:
        if key not in self.color_options:
            raise ValueError(f"color_by={key!r} is not a per-sample variable; choose one of {self.color_options}.")
        return key

    def _build_views(self, embedding: xr.DataArray, recording: xr.Dataset | None) -> None:
        values = sample_values(self._ff, self.color_by)
        if self.grid is None:
            fig = embedding_scatter(embedding, color=values)
            fig.data[0].marker.colorbar.title.text = self.color_by
        else:
            fig = density_figure(self.grid, values, self.color_by)
            fig.update_layout(xaxis_title="latent 0", yaxis_title="latent 1", dragmode="lasso")
        fig.add_trace(overlay_trace(2, "selection"))
        fig.add_trace(overlay_trace(2, "current"))
        self.embedding_view = view(fig, "mw-emb-embedding", HEIGHTS["2d"])
        hit = self.embedding_view.data[0 if self.grid is None else 1]
        hit.on_selection(self._handle_selection)
        hit.on_click(self._handle_click)
        shown = self._ff if self.grid is None else self._ff.isel(sample=trajectory_subset(self._ff, self._max_state))
        state = trajectories(shown, self.color_by, arrows=False, dims=self._n_dims)
        state.add_trace(overlay_trace(self._n_dims, "selection"))
        state.add_trace(overlay_trace(self._n_dims, "current"))
        self.state_view = view(state, "mw-emb-state", HEIGHTS["3d"] if self._n_dims == 3 else HEIGHTS["2d"])
        self._panels = [view_panel("embedding", self.embedding_view), view_panel("state", self.state_view)]
        self.behaviour_view = self.raster_view = None
        if self._behaviour_var is not None:
            fig = behaviour(self._ff, self._behaviour_var)
            fig.add_trace(overlay_trace(2, "selection"))
            self.behaviour_view = view(fig, "mw-emb-behaviour", HEIGHTS["series"])
            self._panels.append(view_panel("behaviour", self.behaviour_view))
            self._bvals = behaviour_series_values(self._ff, self._behaviour_var)
        if recording is not None:
            self._build_raster(recording)

    def _build_raster(self, recording: xr.Dataset) -> None:
        fig = raster(recording)
        self._raster_trial = None
        if "trial" in recording["spike_counts"].dims:
            self._raster_trial = recording["trial"].values[0] if "trial" in recording.coords else 0
        self._raster_y = -1.0
        trace = overlay_trace(2, "selection")
        trace.marker.symbol, trace.marker.size = "triangle-up", 9
        fig.add_trace(trace)
        fig.update_yaxes(range=[-2.0, recording.sizes["unit"] - 0.5])
        self.raster_view = view(fig, "mw-emb-raster", HEIGHTS["series"])
        self._panels.append(view_panel("raster", self.raster_view))

    def _build_controls(self) -> None:
        self.color_dropdown = widgets.Dropdown(options=self.color_options, value=self.color_by, description="colour")
        self.color_dropdown.add_class("mw-emb-color")
        traitlets.link((self.color_dropdown, "value"), (self, "color_by"))
        self.clear_button = widgets.Button(description="Clear selection", icon="times")
        self.clear_button.add_class("mw-emb-clear")
        self.clear_button.on_click(lambda _: self.select([]))
        self.status = widgets.HTML("no selection")
        self.status.add_class("mw-emb-status")
        self.clear_button.layout.width = "150px"
        self.controls = controls_box([self.color_dropdown, self.clear_button, self.status], "mw-emb-controls")

    @property
    def views(self) -> dict[str, Any]:
        """The FigureWidgets by name (behaviour/raster only when available)."""
        out = {"embedding": self.embedding_view, "state": self.state_view}
        if self.behaviour_view is not None:
            out["behaviour"] = self.behaviour_view
        if self.raster_view is not None:
            out["raster"] = self.raster_view
        return out

    # --- public actions (also used by the plotly callbacks) ------------------------------------
    def select(self, indices: Sequence[int]) -> None:
        """Set the selection to these sample indices (validated, sorted, unique)."""
        idx = np.unique(np.asarray(list(indices), dtype=np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= self._emb.shape[0]):
            raise ValueError(f"selection indices must lie in [0, {self._emb.shape[0]}); got {idx[0]}..{idx[-1]}.")
        self.selection = [int(i) for i in idx]

    def select_box(self, xrange: Sequence[float], yrange: Sequence[float]) -> None:
        """Select every sample whose embedding (first two latents) lies in the box."""
        self.select(points_in_box(self._emb, xrange, yrange))

    def select_lasso(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        """Select every sample whose embedding (first two latents) lies in the lasso polygon."""
        self.select(points_in_lasso(self._emb, xs, ys))

    def _handle_selection(self, trace: Any, points: Any, selector: Any) -> None:
        if self.grid is None or selector is None:
            inds = np.asarray(points.point_inds, dtype=np.int64)
            self.select(self.grid.representative[inds] if self.grid is not None else inds)
        elif getattr(selector, "type", "") == "box":
            self.select_box(selector.xrange, selector.yrange)
        else:
            self.select_lasso(selector.xs, selector.ys)

    def _handle_click(self, trace: Any, points: Any, state: Any) -> None:
        if points.point_inds:
            i = int(points.point_inds[0])
            self.sample = int(self.grid.representative[i]) if self.grid is not None else i

    # --- redraws --------------------------------------------------------------------------
    @traitlets.validate("sample")
    def _valid_sample(self, proposal: dict) -> int:
        return check_sample(int(proposal["value"]), self._x.shape[0])

    def _on_sample(self, change: dict) -> None:
        self._redraw_current(change["new"])

    def _redraw_current(self, i: int) -> None:
        with self.embedding_view.batch_update():
            set_points(self.embedding_view.data[-1], self._emb[[i]])
        with self.state_view.batch_update():
            set_points(self.state_view.data[-1], self._x[[i], : self._n_dims])

    def _on_selection(self, change: dict) -> None:
        sel = np.asarray(change["new"], dtype=np.int64)
        with self.embedding_view.batch_update():
            set_points(self.embedding_view.data[-2], self._emb[sel].reshape(-1, 2))
        with self.state_view.batch_update():
            set_points(self.state_view.data[-2], self._x[sel, : self._n_dims].reshape(-1, self._n_dims))
        if self.behaviour_view is not None:
            vals = self._bvals[sel]  # (m, k)
            pts = np.column_stack([np.tile(self._time[sel], vals.shape[1]), vals.T.reshape(-1)])
            with self.behaviour_view.batch_update():
                set_points(self.behaviour_view.data[-1], pts.reshape(-1, 2))
        if self.raster_view is not None:
            shown = sel if self._raster_trial is None else sel[self._trial[sel] == self._raster_trial]
            pts = np.column_stack([self._time[shown], np.full(shown.size, self._raster_y)])
            with self.raster_view.batch_update():
                set_points(self.raster_view.data[-1], pts.reshape(-1, 2))
        if not sel.size:
            self.embedding_view.clear_selections()  # drop plotly's box/lasso outline too
        self.status.value = f"<b>{sel.size}</b> selected" if sel.size else "no selection"

    @traitlets.validate("color_by")
    def _valid_color(self, proposal: dict) -> str:
        return self._check_color(proposal["value"])

    def _on_color(self, change: dict) -> None:
        values = sample_values(self._ff, change["new"])
        with self.embedding_view.batch_update():
            if self.grid is None:
                self.embedding_view.data[0].marker.update(marker_color(values, change["new"]))
            else:
                self.embedding_view.data[0].update(density_image(self.grid, values, change["new"]))


def behaviour_series_values(flow_field: xr.Dataset, variable: str) -> np.ndarray:
    """(sample, k) values of a behaviour variable in sample order (for highlight overlays)."""
    da = flow_field[variable]
    return da.values.reshape(da.sizes["sample"], -1).astype(np.float64)


def link_explorers(embedding_explorer: EmbeddingExplorer, flow_explorer: Any) -> traitlets.link:
    """Link the ``sample`` of an EmbeddingExplorer and a FlowFieldExplorer (both directions).

    Clicking a point in the embedding then jumps the flow-field explorer to that sample; the
    embedding explorer starts at the flow explorer's current sample.
    Returns the ``traitlets.link``; call ``.unlink()`` to undo.
    """
    n_a, n_b = embedding_explorer._x.shape[0], flow_explorer._x.shape[0]
    if n_a != n_b:
        raise ValueError(f"the explorers show different flow fields ({n_a} vs {n_b} samples); "
                         "link explorers built on the same flow field.")
    return traitlets.link((flow_explorer, "sample"), (embedding_explorer, "sample"))
