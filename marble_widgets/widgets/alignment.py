"""AlignmentView: distances between groups, their MDS map, and any pair's embeddings after alignment."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets
import xarray as xr

from marble_widgets.plotting import distance_heatmap, mds_map
from marble_widgets.plotting.common import require_dims
from marble_widgets.plotting.theme import HIGHLIGHT, apply_theme, palette_color
from marble_widgets.widgets._base import HEIGHTS, controls_box, grid, panel, set_subtitle, view
from marble_widgets.widgets.text import VIEW_TEXT

AlignFn = Callable[[xr.DataArray, xr.DataArray], Any]
ScoreFn = Callable[[xr.DataArray, xr.DataArray], float]


def default_align_fn(label: str | None) -> AlignFn:
    """``analysis.procrustes_align(source, target, label).aligned``, imported lazily."""
    def align(source: xr.DataArray, target: xr.DataArray) -> xr.DataArray:
        from marble_widgets.analysis import procrustes_align
        return procrustes_align(source, target, label).aligned
    return align


def default_consistency_fn(label: str | None) -> ScoreFn:
    """``analysis.consistency({a, b}, label)[a, b]`` as a float, imported lazily."""
    def score(source: xr.DataArray, target: xr.DataArray) -> float:
        from marble_widgets.analysis import consistency
        table = consistency({"source": source, "target": target}, label)
        return float(table.sel(source="source", target="target"))
    return score


def _overlay_figure(title: str) -> Any:
    import plotly.graph_objects as go
    fig = go.Figure([
        go.Scattergl(x=[], y=[], mode="markers", name="target",
                     marker=dict(size=5, color=palette_color(0), opacity=0.6)),
        go.Scattergl(x=[], y=[], mode="markers", name="source (aligned)",
                     marker=dict(size=5, color=palette_color(1), opacity=0.6)),
    ])
    fig.update_layout(xaxis_title="latent 0", yaxis_title="latent 1",
                      legend=dict(orientation="h", y=1.0, yanchor="top", x=1, xanchor="right"))
    return apply_theme(fig, title, subtitle="source aligned onto target")


class AlignmentView(widgets.VBox):
    """Pick two groups (conditions/animals) and compare their embeddings after alignment.

    Shows the distance heatmap and the MDS map (the chosen pair highlighted), the two groups'
    embeddings overlaid after ``align_fn(source, target)`` (returns the aligned source DataArray
    or an object with ``.aligned``) and the ``consistency_fn(source, target)`` score. Both default
    to ``marble_widgets.analysis`` (Procrustes / consistency on ``label`` bins, default "time");
    results are cached per pair. Clicking a heatmap cell picks that pair. State: ``source``, ``target``.
    CSS classes: ``mw-alignment-view``; views ``mw-align-heatmap``, ``mw-align-mds``, ``mw-align-overlay``;
    controls ``mw-align-controls``; score label ``mw-align-score``.
    """

    source = traitlets.Unicode()
    target = traitlets.Unicode()

    def __init__(self, embedding: xr.DataArray, dist: xr.DataArray, mds_coords: xr.DataArray,
                 align_fn: AlignFn | None = None, consistency_fn: ScoreFn | None = None, *,
                 by: str = "condition", label: str | None = "time") -> None:
        require_dims(embedding, ("sample", "latent"), "embedding", "MARBLE.transform output")
        if by not in embedding.coords:
            raise ValueError(f"by={by!r} is not a coordinate of the embedding; choose one of "
                             f"{sorted(map(str, embedding.coords))}.")
        self.groups = [str(g) for g in dist[dist.dims[0]].values]
        labels = embedding[by].values.astype(str)
        self._members = {g: np.flatnonzero(labels == g) for g in self.groups}
        empty = [g for g, m in self._members.items() if m.size == 0]
        if len(self.groups) < 2 or empty:
            raise ValueError(f"dist must name at least 2 groups that all occur in embedding[{by!r}]; "
                             f"groups {self.groups}, absent from the embedding: {empty}.")
        self._embedding = embedding
        self._align = align_fn or default_align_fn(label)
        self._score = consistency_fn or default_consistency_fn(label)
        self.cache: dict[tuple[str, str], tuple[np.ndarray, float]] = {}
        self._build(dist, mds_coords)
        self.observe(self._on_pair, ["source", "target"])
        self._on_pair({})

    def _build(self, dist: xr.DataArray, mds_coords: xr.DataArray) -> None:
        import plotly.graph_objects as go
        heat = distance_heatmap(dist)
        heat.add_trace(go.Scatter(x=[], y=[], mode="markers", name="pair", hoverinfo="skip", showlegend=False,
                                  marker=dict(symbol="square-open", size=22, color=HIGHLIGHT, line=dict(width=3))))
        self.heatmap_view = view(heat, "mw-align-heatmap")
        self.heatmap_view.data[0].on_click(self._handle_click)
        mds = mds_map(mds_coords)
        self._mds_xy = {str(g): mds_coords.values[i, :2] for i, g in enumerate(mds_coords[mds_coords.dims[0]].values)}
        mds.add_trace(go.Scatter(x=[], y=[], mode="markers", name="pair", hoverinfo="skip", showlegend=False,
                                 marker=dict(symbol="circle-open", size=24, color=HIGHLIGHT, line=dict(width=3))))
        self.mds_view = view(mds, "mw-align-mds")
        self.overlay_view = view(_overlay_figure("Aligned embeddings"), "mw-align-overlay")
        self.source_dropdown = widgets.Dropdown(options=self.groups, value=self.groups[0], description="source")
        self.target_dropdown = widgets.Dropdown(options=self.groups, value=self.groups[1], description="target")
        traitlets.link((self.source_dropdown, "value"), (self, "source"))
        traitlets.link((self.target_dropdown, "value"), (self, "target"))
        self.score_label = widgets.HTML()
        for w, css in ((self.source_dropdown, "mw-align-source"), (self.target_dropdown, "mw-align-target"),
                       (self.score_label, "mw-align-score")):
            w.add_class(css)
        self.controls = controls_box([self.source_dropdown, self.target_dropdown, self.score_label],
                                     "mw-align-controls")
        for fw in self.views.values():
            fw.layout.height = HEIGHTS["2d"]
        panels = [panel(VIEW_TEXT["heatmap"][0], self.heatmap_view, "mw-panel-heatmap", VIEW_TEXT["heatmap"][1]),
                  panel(VIEW_TEXT["mds"][0], self.mds_view, "mw-panel-mds", VIEW_TEXT["mds"][1]),
                  panel(VIEW_TEXT["overlay"][0], self.overlay_view, "mw-panel-overlay", VIEW_TEXT["overlay"][1])]
        super().__init__([self.controls, grid(panels, 3)])
        self.add_class("mw-alignment-view")

    @property
    def views(self) -> dict[str, Any]:
        """The FigureWidgets by name."""
        return {"heatmap": self.heatmap_view, "mds": self.mds_view, "overlay": self.overlay_view}

    def pair_result(self, source: str, target: str) -> tuple[np.ndarray, float]:
        """Aligned source embedding (n_source, latent) and consistency score, cached per pair."""
        key = (source, target)
        if key not in self.cache:
            src = self._embedding.isel(sample=self._members[source])
            tgt = self._embedding.isel(sample=self._members[target])
            try:
                aligned = self._align(src, tgt)
                score = float(self._score(src, tgt))
            except ValueError as err:
                raise ValueError(f"aligning {source!r} onto {target!r} failed: {err} Pass label= (a numeric "
                                 "sample coord shared by both groups, e.g. 'position') or your own align_fn/"
                                 "consistency_fn.") from err
            aligned = getattr(aligned, "aligned", aligned)
            self.cache[key] = (np.asarray(getattr(aligned, "values", aligned), dtype=np.float64), score)
        return self.cache[key]

    @traitlets.validate("source", "target")
    def _valid_group(self, proposal: dict) -> str:
        if proposal["value"] not in self._members:
            raise ValueError(f"{proposal['trait'].name}={proposal['value']!r} is not a group; "
                             f"choose one of {self.groups}.")
        return proposal["value"]

    def _handle_click(self, trace: Any, points: Any, state: Any) -> None:
        if points.point_inds:
            row, col = points.point_inds[0]  # heatmap points are (row, column)
            self.source, self.target = self.groups[row], self.groups[col]

    def _on_pair(self, change: dict) -> None:
        if not self.source or not self.target:
            return
        aligned, score = self.pair_result(self.source, self.target)
        target = self._embedding.values[self._members[self.target]]
        with self.overlay_view.batch_update():
            self.overlay_view.data[0].update(x=target[:, 0], y=target[:, 1], name=f"{self.target} (target)")
            self.overlay_view.data[1].update(x=aligned[:, 0], y=aligned[:, 1], name=f"{self.source} (aligned)")
        with self.heatmap_view.batch_update():
            self.heatmap_view.data[-1].update(x=[self.target], y=[self.source])
        with self.mds_view.batch_update():
            pts = np.array([self._mds_xy.get(g, (np.nan, np.nan)) for g in (self.source, self.target)])
            self.mds_view.data[-1].update(x=pts[:, 0], y=pts[:, 1])
        self.score_label.value = f"consistency <b>{score:.3f}</b> ({self.source} → {self.target})"
        set_subtitle(self.overlay_view, f"{self.source} aligned onto {self.target} · consistency {score:.3f}")
