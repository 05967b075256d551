"""FlowFieldExplorer: step through a trajectory and see MARBLE's local geometry at each point."""
from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets
import xarray as xr

from marble_widgets.plotting import derivative_features, embedding_scatter, local_flow, neighbourhood, trajectories
from marble_widgets.plotting.common import (
    check_sample, default_color_key, pick_dims, sample_context, require_dims, require_vars, sample_values, trajectory_order,
)
from marble_widgets.plotting.features import derivative_features_data, feature_layout
from marble_widgets.plotting.local_geometry import (
    inspect_arrays, local_flow_data, local_flow_subtitle, neighbourhood_data, neighbourhood_subtitle,
)
from marble_widgets.plotting.state_space import FLOW_HINT
from marble_widgets.widgets._base import (
    HEIGHTS, Guard, controls_box, grid, overlay_trace, set_points, set_subtitle, view, view_panel,
)


class TrajectoryIndex:
    """Per-(condition, trial) sample lists sorted by time, computed once for fast stepping.

    Attributes: ``traj[(cond, trial)]`` -> int array; ``key_of[i]``, ``pos_of[i]`` for sample i;
    ``conditions`` (sorted) and ``trials[cond]`` (sorted).
    """

    def __init__(self, flow_field: xr.Dataset) -> None:
        cond = flow_field["condition"].values.astype(str)
        trial = flow_field["trial"].values
        order, starts = trajectory_order(cond, trial, flow_field["time"].values)
        self.traj: dict[tuple[str, int], np.ndarray] = {}
        self.key_of: list[tuple[str, int]] = [("", 0)] * order.size
        self.pos_of = np.zeros(order.size, dtype=np.int64)
        for piece in np.split(order, np.flatnonzero(starts)[1:]):
            key = (str(cond[piece[0]]), int(trial[piece[0]]))
            self.traj[key] = piece
            self.pos_of[piece] = np.arange(piece.size)
            for i in piece:
                self.key_of[i] = key
        self.conditions = sorted({k[0] for k in self.traj})
        self.trials = {c: sorted(t for cc, t in self.traj if cc == c) for c in self.conditions}


class FlowFieldExplorer(widgets.VBox):
    """Play through a flow field's trajectories with the point's neighbourhood, frame and features.

    Shows why a point gets its embedding: state-space position (with the flow field), its graph
    neighbourhood and tangent frame, the transported local flow, the derivative features, and
    (if ``embedding`` is given) where it lands in the embedding. State: ``sample`` (int),
    ``condition`` (str), ``trial`` (int); setting any of them updates the views and controls.
    While Play runs, the derivative-feature view (the costliest browser redraw: three subplots)
    is redrawn at most every ``play_refresh_s`` seconds and once more when playback pauses, so
    the other views keep up with the animation; any step taken while not playing (slider,
    keys, ``sample =``) redraws every view.
    CSS classes: ``mw-flow-explorer`` on the box; views ``mw-flow-state``, ``mw-flow-neighbourhood``,
    ``mw-flow-local``, ``mw-flow-features``, ``mw-flow-embedding``; controls ``mw-flow-controls``.
    """

    sample = traitlets.Int(0)
    condition = traitlets.Unicode("")
    trial = traitlets.Int(0)

    def __init__(self, flow_field: xr.Dataset, inspect_ds: xr.Dataset, embedding: xr.DataArray | None = None,
                 *, dims: int | None = None, max_arrows: int = 300, interval_ms: int = 120,
                 play_refresh_s: float = 1.0) -> None:
        require_vars(flow_field, ("x", "v"), "flow_field", FLOW_HINT)
        self._arrays = inspect_arrays(inspect_ds, flow_field)
        n = flow_field.sizes["sample"]
        if embedding is not None:
            require_dims(embedding, ("sample", "latent"), "embedding", "MARBLE.transform output")
            if embedding.sizes["sample"] != n:
                raise ValueError(f"embedding has {embedding.sizes['sample']} samples but flow_field has {n}; "
                                 "pass the embedding of this flow field.")
        self._x = flow_field["x"].values
        self._time = flow_field["time"].values
        self._n_dims = pick_dims(self._x.shape[1], dims)
        self._emb = None if embedding is None else embedding.values[:, :2]
        self._context = flow_field
        self.index = TrajectoryIndex(flow_field)
        self._guard = Guard()
        self._play_refresh_s = float(play_refresh_s)
        self._features_at = -np.inf  # time.monotonic() of the last feature redraw
        self._features_shown = -1     # sample the feature view shows
        self._build_controls(interval_ms)
        self._build_views(flow_field, inspect_ds, embedding, max_arrows)
        super().__init__([self.controls, grid(self._panels, 2)])
        self.add_class("mw-flow-explorer")
        first = int(self.trajectory(self.index.conditions[0], self.index.trials[self.index.conditions[0]][0])[0])
        self.sample = first
        self._sync_controls(first)
        self._redraw(first)
        self.observe(self._on_sample, "sample")
        self.observe(self._on_condition, "condition")
        self.observe(self._on_trial, "trial")

    # --- construction -----------------------------------------------------------------------
    def _build_controls(self, interval_ms: int) -> None:
        conds = self.index.conditions
        self.condition_dropdown = widgets.Dropdown(options=conds, value=conds[0], description="condition",
                                                   disabled=len(conds) == 1)
        self.trial_dropdown = widgets.Dropdown(options=self.index.trials[conds[0]], description="trial",
                                               layout=widgets.Layout(width="140px"))
        self.play = widgets.Play(min=0, max=0, step=1, interval=interval_ms, description="play")
        self.slider = widgets.IntSlider(min=0, max=0, description="step", continuous_update=True)
        traitlets.link((self.play, "value"), (self.slider, "value"))
        traitlets.link((self.play, "max"), (self.slider, "max"))
        self.status = widgets.HTML()
        for w, css in ((self.condition_dropdown, "mw-flow-condition"), (self.trial_dropdown, "mw-flow-trial"),
                       (self.play, "mw-flow-play"), (self.slider, "mw-flow-slider"), (self.status, "mw-flow-status")):
            w.add_class(css)
        self.condition_dropdown.observe(lambda c: setattr(self, "condition", c["new"]), "value")
        self.trial_dropdown.observe(lambda c: setattr(self, "trial", int(c["new"])), "value")
        self.slider.observe(self._on_slider, "value")
        self.play.observe(self._on_playing, "playing")
        self.controls = controls_box([self.condition_dropdown, self.trial_dropdown, self.play, self.slider,
                                      self.status], "mw-flow-controls")

    def _build_views(self, ff: xr.Dataset, inspect_ds: xr.Dataset, embedding: xr.DataArray | None,
                     max_arrows: int) -> None:
        key = default_color_key(ff)
        h3 = HEIGHTS["3d"] if self._n_dims == 3 else HEIGHTS["2d"]
        state = trajectories(ff, key, arrows=True, max_arrows=max_arrows, dims=self._n_dims)
        state.add_trace(overlay_trace(self._n_dims, "current"))
        self.state_view = view(state, "mw-flow-state", h3)
        nb = neighbourhood(inspect_ds, 0, ff)
        self.neighbourhood_view = view(nb, "mw-flow-neighbourhood", h3 if nb.data[0].type == "scatter3d" else None)
        self.local_view = view(local_flow(inspect_ds, 0, ff), "mw-flow-local", HEIGHTS["2d"])
        self._feature_layout = feature_layout(self._arrays["feature_names"])
        self.features_view = view(derivative_features(inspect_ds, 0), "mw-flow-features", HEIGHTS["features"])
        self.embedding_view = None
        if embedding is not None:
            fig = embedding_scatter(embedding, color=None if key is None else sample_values(ff, key))
            if key is not None:
                fig.data[0].marker.colorbar.title.text = key
            fig.add_trace(overlay_trace(2, "current"))
            self.embedding_view = view(fig, "mw-flow-embedding", HEIGHTS["2d"])
        self._panels = [view_panel(n, fw) for n, fw in self.views.items()]

    @property
    def views(self) -> dict[str, Any]:
        """The FigureWidgets by name (``embedding`` only when an embedding was given)."""
        out = {"state": self.state_view, "neighbourhood": self.neighbourhood_view, "local": self.local_view}
        if self.embedding_view is not None:
            out["embedding"] = self.embedding_view
        out["features"] = self.features_view
        return out

    def trajectory(self, condition: Hashable | None = None, trial: int | None = None) -> np.ndarray:
        """Sample indices of one trajectory in time order (default: the current one)."""
        key = (str(self.condition if condition is None else condition), int(self.trial if trial is None else trial))
        if key not in self.index.traj:
            raise ValueError(f"no trajectory for condition={key[0]!r}, trial={key[1]}; conditions: "
                             f"{self.index.conditions}, trials of it: {self.index.trials.get(key[0], [])}.")
        return self.index.traj[key]

    # --- state changes ----------------------------------------------------------------------
    @traitlets.validate("sample")
    def _valid_sample(self, proposal: dict) -> int:
        return check_sample(int(proposal["value"]), self._x.shape[0])

    def _on_sample(self, change: dict) -> None:
        self._sync_controls(change["new"])
        self._redraw(change["new"])

    def _sync_controls(self, i: int) -> None:
        cond, trial = self.index.key_of[i]
        with self._guard.hold():
            self.condition, self.trial = cond, trial
            if self.condition_dropdown.value != cond:
                self.condition_dropdown.value = cond
            if list(self.trial_dropdown.options) != self.index.trials[cond]:
                self.trial_dropdown.options = self.index.trials[cond]
            self.trial_dropdown.value = trial
            self.slider.max = int(self.index.traj[(cond, trial)].size - 1)
            self.slider.value = int(self.index.pos_of[i])

    def _on_condition(self, change: dict) -> None:
        if self._guard.active:
            return
        if change["new"] not in self.index.trials:
            raise ValueError(f"condition={change['new']!r} is not in the flow field; choose one of "
                             f"{self.index.conditions}.")
        self.sample = int(self.trajectory(change["new"], self.index.trials[change["new"]][0])[0])

    def _on_trial(self, change: dict) -> None:
        if not self._guard.active:
            self.sample = int(self.trajectory(self.condition, change["new"])[0])

    def _on_slider(self, change: dict) -> None:
        if not self._guard.active:
            self.sample = int(self.trajectory()[change["new"]])

    def _on_playing(self, change: dict) -> None:
        if not change["new"] and self._features_shown != self.sample:
            self._redraw_features(self.sample)  # playback paused: bring the deferred view up to date

    def _redraw_features(self, i: int) -> None:
        arrays = self._arrays
        with self.features_view.batch_update():
            for trace, data in zip(self.features_view.data, derivative_features_data(arrays, self._feature_layout, i)):
                trace.update(data)
            set_subtitle(self.features_view, _features_subtitle(self._context, i, len(arrays["feature_names"])))
        self._features_at, self._features_shown = time.monotonic(), i

    def _redraw(self, i: int) -> None:
        """Redraw the views for sample ``i``: one plotly edit per figure (data and title together).

        Why one edit: a title set outside ``batch_update`` is a second full plotly redraw.
        The feature view is skipped while Play runs (see the class docstring).
        """
        arrays, n_dims = self._arrays, self._n_dims
        with self.state_view.batch_update():
            set_points(self.state_view.data[-1], self._x[[i], :n_dims])
        nb_dims = 3 if self.neighbourhood_view.data[0].type == "scatter3d" else 2
        with self.neighbourhood_view.batch_update():
            for trace, data in zip(self.neighbourhood_view.data, neighbourhood_data(arrays, i, nb_dims)):
                trace.update(data)
            set_subtitle(self.neighbourhood_view, neighbourhood_subtitle(arrays, i, nb_dims))
        with self.local_view.batch_update():
            for trace, data in zip(self.local_view.data, local_flow_data(arrays, i)):
                trace.update(data)
            set_subtitle(self.local_view, local_flow_subtitle(arrays, i))
        if not self.play.playing or time.monotonic() - self._features_at >= self._play_refresh_s:
            self._redraw_features(i)
        if self.embedding_view is not None:
            with self.embedding_view.batch_update():
                set_points(self.embedding_view.data[-1], self._emb[[i]])
        cond, trial = self.index.key_of[i]
        self.status.value = f"sample <b>{i}</b> · {cond} · trial {trial} · t = {float(self._time[i]):.3g}"


def _features_subtitle(flow_field: xr.Dataset, i: int, n_features: int) -> str:
    return f"{sample_context((flow_field,), i)} · {n_features} features fed to the MLP"
