"""One dashboard for a fitted model: flow field + embedding, spike raster, alignment, training, drawn in the browser.

Why: every view is an anywidget that received its arrays once and answers interactions itself
(:class:`FlowView`, :class:`RasterView`, :class:`AlignmentView`, :class:`TrainingView`); the
dashboard stacks them under a summary header and gives them one page channel (``mwChannel``), so
the raster follows the flow view's sample, and a click on the raster moves the flow view, without
the kernel. :meth:`Dashboard.to_html` writes the same modules and buffers into one page that stays
interactive without a kernel.
"""
from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import xarray as xr

from marble_widgets.data.containers import FEATURE_COORDS
from marble_widgets.widgets.alignment_view import AlignFn, AlignmentView, ScoreFn
from marble_widgets.widgets.flow_view import FlowView
from marble_widgets.widgets.page import page_view, write_page
from marble_widgets.widgets.raster_view import RasterView
from marble_widgets.widgets.summary import header_html, model_summary
from marble_widgets.widgets.training_view import TrainingView

#: Variables that make a Dataset a results Dataset (``MARBLE.results``): nothing is recomputed then.
RESULT_VARS = ("embedding", "neighbors")


class Dashboard(widgets.VBox):
    """A summary header over the views of one fitted model (see :func:`dashboard`).

    Attributes: ``flow_view`` (:class:`FlowView`), ``raster`` (:class:`RasterView` or None),
    ``alignment`` (:class:`AlignmentView` or None), ``training`` (:class:`TrainingView` or None),
    ``results`` (the Dataset drawn), ``parts`` (the present views by name), ``channel`` (the page
    channel the views share: set on every view with a ``channel`` trait). CSS class: ``mw-dashboard``.
    """

    def __init__(self, parts: dict[str, widgets.Widget | None], title: str = "MARBLE", *,
                 summary: dict[str, list[tuple[str, str]]] | None = None, results: xr.Dataset | None = None,
                 channel: str | None = None) -> None:
        self.parts = {k: v for k, v in parts.items() if v is not None}
        self.channel = channel or f"mw-{uuid.uuid4().hex}"
        for view in self.parts.values():
            if view.has_trait("channel"):  # FlowView and RasterView; alignment and training follow no sample
                view.channel = self.channel
        self.flow_view = parts.get("flow")
        self.raster = parts.get("raster")
        self.alignment = parts.get("alignment")
        self.training = parts.get("training")
        self.results = results
        self.title = title
        self.summary = summary or {}
        self.header = widgets.HTML(header_html(title, self.summary))
        super().__init__([self.header, *self.parts.values()])
        self.add_class("mw-dashboard")

    @property
    def flow_explorer(self) -> FlowView | None:
        """The flow view (the name of the retired FigureWidget explorer)."""
        return self.flow_view

    @property
    def embedding_explorer(self) -> FlowView | None:
        """The flow view, which draws the embedding too (the name of the retired embedding explorer)."""
        return self.flow_view

    def to_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write one self-contained, interactive page holding every view (plotly.js embedded once).

        Step, Play, click-to-jump, selection, recolour, the raster following the flow view (and a
        click on it) and the alignment pair change all work from ``file://``: each view's ES module
        runs against its exported state (compressed buffers), linked by the same page channel.
        """
        title = title or self.title
        views = [page_view(key, view) for key, view in self.parts.items()]
        return write_page(path, title, views, header_html(title, self.summary))


def results_dataset(model: Any, data: xr.Dataset, *, embedding: xr.DataArray | None = None,
                    inspect_ds: xr.Dataset | None = None) -> xr.Dataset:
    """The results Dataset the views draw: ``data`` itself if it already is one, else built once.

    A flow field becomes ``model.results(ff)`` when the model has it, else ``ff`` merged with
    ``model.inspect(ff)`` (or with ``inspect_ds`` when given); ``embedding`` replaces the stored one.
    Features without their ``feature_order``/``_component``/``_direction`` coords (older inspect
    output) are left out, so the flow view shows no feature panel for them.
    """
    if not isinstance(data, xr.Dataset):
        raise TypeError(f"flow_field must be an xarray.Dataset (a flow field or MARBLE.results output); "
                        f"got {type(data).__name__}.")
    if all(v in data for v in RESULT_VARS):
        ds = data
    elif inspect_ds is not None:
        ds = xr.merge([data, inspect_ds], join="exact", combine_attrs="override")
    elif hasattr(model, "results"):
        ds = model.results(data)
    else:
        ds = xr.merge([data, model.inspect(data)], join="exact", combine_attrs="override")
    if "features" in ds and not all(c in ds["features"].coords for c in FEATURE_COORDS):
        ds = ds.drop_vars("features")  # inspect output before MARBLE.results: features unlabelled, not drawn
    missing = [v for v in RESULT_VARS if v not in ds]
    if missing:
        raise ValueError(f"the results lack {missing}; pass a flow field with a fitted model, or "
                         "MARBLE.results(flow_field).")
    if embedding is not None:
        values = np.asarray(embedding.transpose("sample", "latent").values)
        ds = ds.drop_vars(["embedding", "latent"], errors="ignore").assign(embedding=(("sample", "latent"), values))
    return ds


def _alignment(embedding: xr.DataArray, dist: xr.DataArray | None, mds_coords: xr.DataArray | None,
               align_fn: AlignFn | None, consistency_fn: ScoreFn | None, label: str | None,
               ot_points: int | None = None) -> AlignmentView | None:
    """The alignment view when there are >= 2 conditions; left out with a warning when it cannot be built."""
    if "condition" not in embedding.coords or np.unique(embedding["condition"].values.astype(str)).size < 2:
        return None
    try:
        if dist is None or mds_coords is None:
            from marble_widgets.analysis import distances, mds

            dist = distances(embedding, "condition", max_points=ot_points) if dist is None else dist
            mds_coords = mds(dist) if mds_coords is None else mds_coords
        return AlignmentView(embedding, dist, mds_coords, align_fn, consistency_fn, label=label)
    except ValueError as err:  # e.g. groups that share no label range: show the rest of the dashboard
        warnings.warn(f"dashboard: alignment view left out: {err}", stacklevel=3)
        return None


def dashboard(
    model: Any,
    flow_field: xr.Dataset,
    recording: xr.Dataset | None = None,
    *,
    embedding: xr.DataArray | None = None,
    inspect_ds: xr.Dataset | None = None,
    dist: xr.DataArray | None = None,
    mds_coords: xr.DataArray | None = None,
    align_fn: AlignFn | None = None,
    consistency_fn: ScoreFn | None = None,
    label: str | None = "time",
    dims: int = 2,
    raster_window: float = 5.0,
    ot_points: int | None = 1000,
    title: str = "MARBLE",
) -> Dashboard:
    """Every view of a fitted ``model`` on a flow field (or its results Dataset) in one dashboard.

    ``flow_field`` is a flow field (its results are built once: ``model.results``, else
    ``model.inspect``) or ``MARBLE.results(flow_field)`` (nothing is recomputed). Shows the
    :class:`FlowView` on MARBLE's own neighbours, an :class:`AlignmentView` with >= 2 conditions
    (distances/MDS from ``marble_widgets.analysis`` unless ``dist``/``mds_coords`` are given;
    ``label``: the numeric sample coord the default alignment bins on; ``ot_points``: the distances
    compare seeded subsamples of this many samples per condition — exact OT on every sample costs
    seconds per pair for conditions of thousands of samples, and the heatmap is an overview;
    None: every sample; left out with a warning if it fails) and a :class:`TrainingView` of ``model.loss_history_``. With the ``recording`` the flow
    field was built from, a :class:`RasterView` of its spikes (``raster_window``: half-width in
    seconds) follows the flow view's sample in the page, and a click on it moves the flow view
    (raises if the results' times fall outside the recording).
    """
    ds = results_dataset(model, flow_field, embedding=embedding, inspect_ds=inspect_ds)
    emb = ds["embedding"]
    flow = FlowView(ds, dims=dims, title="Flow field and embedding")
    order, offsets = flow.trajectory_order  # the buffers are not decoded again (features can be tens of MB)
    flow.sample = int(order[offsets[0] + (offsets[1] - offsets[0]) // 2])  # mid-trajectory: a typical point
    raster = None if recording is None else RasterView(recording, ds, window=raster_window, sample=flow.sample)
    training = TrainingView.from_model(model) if isinstance(getattr(model, "loss_history_", None), xr.Dataset) \
        else None
    if isinstance(label, str) and label in ds.data_vars and ds[label].dims == ("sample",):
        emb = emb.assign_coords({label: ds[label]})  # the alignment bins on it (e.g. position)
    alignment = _alignment(emb, dist, mds_coords, align_fn, consistency_fn, label, ot_points)
    parts = {"flow": flow, "raster": raster, "alignment": alignment, "training": training}
    return Dashboard(parts, title, summary=model_summary(model, ds, emb), results=ds)
