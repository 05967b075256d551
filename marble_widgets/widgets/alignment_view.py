"""AlignmentView: distances between groups, their MDS map, and any pair's embeddings after alignment.

Why: comparing conditions (or animals) means looking at many pairs; every ordered pair's aligned
embedding and consistency score is computed once in Python (``analysis.procrustes_align`` /
``analysis.consistency`` by default) and sent once as binary buffers, so clicking a heatmap cell or
choosing a pair in ``static/alignment_view.js`` switches the overlay without asking the kernel.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import traitlets
import xarray as xr

from marble_widgets.plotting import distance_heatmap, mds_map
from marble_widgets.plotting.common import require_dims
from marble_widgets.widgets.flow_view import STATIC, PlotlyLibrary, plotly_library, unpack
from marble_widgets.widgets.page import THEME, esm_source, exported_buffers, pack_all, page_view, write_page

AlignFn = Callable[[xr.DataArray, xr.DataArray], Any]
ScoreFn = Callable[[xr.DataArray, xr.DataArray], float]
DTYPES = {"points": "float32", "group_offsets": "int32", "aligned": "float32", "pair_offsets": "int32",
          "scores": "float64"}


def default_align_fn(label: str | None) -> AlignFn:
    """``analysis.procrustes_align(source, target, label).aligned``, imported lazily."""
    def align(source: xr.DataArray, target: xr.DataArray) -> xr.DataArray:
        from marble_widgets.analysis import procrustes_align
        return procrustes_align(source, target, label).aligned
    return align


def default_consistency_fn(label: str | None) -> ScoreFn:
    """``analysis.consistency({source, target}, label)[source, target]`` as a float, imported lazily."""
    def score(source: xr.DataArray, target: xr.DataArray) -> float:
        from marble_widgets.analysis import consistency
        table = consistency({"source": source, "target": target}, label)
        return float(table.sel(source="source", target="target"))
    return score


def _figure_json(fig: Any) -> dict[str, Any]:
    """A static figure of ``plotting/`` as plain JSON for plotly.js (the views share its styling)."""
    return json.loads(fig.to_json())


def _mds_positions(coords: xr.DataArray) -> dict[str, list[float]]:
    """First two MDS components of each group, by group name (where the pair is circled)."""
    gdim = coords.dims[0]
    names = coords[gdim].values if gdim in coords.coords else range(coords.shape[0])
    return {str(g): [float(v) for v in coords.values[i, :2]] for i, g in enumerate(names)}


class AlignmentView(anywidget.AnyWidget):
    """Pick two groups (conditions/animals) and compare their embeddings after alignment, in the browser.

    Shows the distance heatmap and the MDS map (``plotting.distance_heatmap`` / ``mds_map``, the
    chosen pair marked), the target's embedding with the source's aligned onto it (first two latent
    dims) and their consistency score. ``align_fn(source, target)`` returns the aligned source (or an
    object with ``.aligned``), ``consistency_fn(source, target)`` a float; both default to
    ``marble_widgets.analysis`` on ``label`` bins. Every ordered pair is computed at construction.

    Synced, two-way: ``pair`` ([source, target]; a heatmap click sets it in the page). ``source`` and
    ``target`` read and set its halves. CSS: root ``mw-alignment-view``.
    """

    _esm = esm_source("alignment_view.js")
    _css = STATIC / "views.css"

    pair = traitlets.List(traitlets.Unicode(), minlen=2, maxlen=2).tag(sync=True)
    sync_ms = traitlets.Int(150).tag(sync=True)
    _arrays = traitlets.Dict().tag(sync=True)
    _meta = traitlets.Dict().tag(sync=True)
    _plotly = traitlets.Instance(PlotlyLibrary).tag(sync=True, **widgets.widget_serialization)

    def __init__(self, embedding: xr.DataArray, dist: xr.DataArray, mds_coords: xr.DataArray,
                 align_fn: AlignFn | None = None, consistency_fn: ScoreFn | None = None, *,
                 by: str = "condition", label: str | None = "time", title: str = "Alignment") -> None:
        require_dims(embedding, ("sample", "latent"), "embedding", "MARBLE.transform output")
        if by not in embedding.coords:
            raise ValueError(f"by={by!r} is not a coordinate of the embedding; choose one of "
                             f"{sorted(map(str, embedding.coords))}.")
        if embedding.sizes["latent"] < 2:
            raise ValueError("embedding needs at least 2 latent dims to be drawn; got 1.")
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
        arrays, pairs = self._payload()
        self._values = arrays
        meta = {"title": str(title), "theme": THEME, "groups": self.groups, "pairs": pairs, "by": by,
                "heatmap": _figure_json(distance_heatmap(dist, title=None)),
                "mds": _figure_json(mds_map(mds_coords, title=None)), "mds_xy": _mds_positions(mds_coords)}
        super().__init__(_arrays=pack_all(arrays, DTYPES), _meta=meta, _plotly=plotly_library(),
                         pair=self.groups[:2])
        self.add_class("mw-alignment-view")

    def _payload(self) -> tuple[dict[str, np.ndarray], list[list[int]]]:
        """Group members' 2-D embedding in group order and every ordered pair's aligned source."""
        emb = self._embedding.values
        members = [self._members[g] for g in self.groups]
        pairs = [[i, j] for i in range(len(self.groups)) for j in range(len(self.groups)) if i != j]
        results = [self.pair_result(self.groups[i], self.groups[j]) for i, j in pairs]
        arrays = {
            "points": np.concatenate([emb[m, :2] for m in members]),
            "group_offsets": np.r_[0, np.cumsum([m.size for m in members])],
            "aligned": np.concatenate([a[:, :2] for a, _ in results]),
            "pair_offsets": np.r_[0, np.cumsum([a.shape[0] for a, _ in results])],
            "scores": np.array([s for _, s in results], dtype=np.float64),
        }
        return arrays, pairs

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
            values = np.asarray(getattr(aligned, "values", aligned), dtype=np.float64)
            if values.shape != (src.sizes["sample"], src.sizes["latent"]):
                raise ValueError(f"align_fn returned shape {values.shape} for {source!r}; it must return the "
                                 f"aligned source, shape {(src.sizes['sample'], src.sizes['latent'])}.")
            self.cache[key] = (values, score)
        return self.cache[key]

    @traitlets.validate("pair")
    def _valid_pair(self, proposal: dict) -> list[str]:
        bad = [g for g in proposal["value"] if g not in self._members]
        if bad:
            raise ValueError(f"pair={list(proposal['value'])} names {bad}, not a group; choose two of {self.groups}.")
        return list(proposal["value"])

    @property
    def source(self) -> str:
        """The group aligned onto ``target`` (``pair[0]``)."""
        return self.pair[0]

    @source.setter
    def source(self, value: str) -> None:
        self.pair = [value, self.pair[1]]

    @property
    def target(self) -> str:
        """The group the source is aligned onto (``pair[1]``)."""
        return self.pair[1]

    @target.setter
    def target(self, value: str) -> None:
        self.pair = [self.pair[0], value]

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays the page draws from, decoded from the synced buffers."""
        return {name: unpack(entry) for name, entry in self._arrays.items()}

    def export_state(self) -> dict[str, Any]:
        """The page's state as JSON-safe values (buffers compressed, base64)."""
        return {"pair": list(self.pair), "sync_ms": self.sync_ms, "_meta": self._meta,
                "_arrays": exported_buffers(self._values, DTYPES)}

    def to_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write one self-contained HTML file in which clicking a cell or picking a pair works offline."""
        return write_page(path, title or self._meta["title"], [page_view("alignment", self)])
