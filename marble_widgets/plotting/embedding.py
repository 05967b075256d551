"""Scatter plots of MARBLE embeddings, with a density-image fast path for ~10^5 points.

Small embeddings are one WebGL scatter trace (trace ``i`` == sample ``i``). Large 2-D embeddings
are drawn as a static :class:`DensityGrid` image in data coordinates (numpy-only datashading)
plus a light "hit" layer of one transparent marker per occupied bin, so hover, click and
box/lasso selection still work while the browser draws a few thousand points, not 10^5.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import xarray as xr

from marble_widgets.plotting.common import (
    encode_categories, is_categorical, json_safe_grid, marker_color, require_dims, require_vars, sample_values,
)
from marble_widgets.plotting.theme import DENSITY, SEQUENTIAL, apply_theme, discrete_colorscale

EMB_HINT = ("the DataArray returned by MARBLE.transform (dims (sample, latent) with sample coords) or the "
            "Dataset of MARBLE.results")
HOVER_COORDS = ("condition", "trial", "time")


class DensityGrid:
    """A fixed 2-D binning of points: each point's bin is found once, then images are bincounts.

    Parameters
    ----------
    points : (n, 2) array of positions (data coordinates).
    bins : number of bins along each axis.
    """

    def __init__(self, points: np.ndarray, bins: int = 200) -> None:
        pts = np.asarray(points, dtype=np.float64)[:, :2]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        hi = np.where(hi > lo, hi, lo + 1.0)
        self.bins = int(bins)
        self.edges = [np.linspace(lo[d], hi[d], self.bins + 1) for d in range(2)]
        self.centers = [0.5 * (e[1:] + e[:-1]) for e in self.edges]
        ij = [np.clip(np.searchsorted(self.edges[d], pts[:, d], side="right") - 1, 0, self.bins - 1) for d in range(2)]
        self.flat = ij[1] * self.bins + ij[0]  # row = y bin, column = x bin
        occupied, first = np.unique(self.flat, return_index=True)
        self.occupied = occupied
        #: one representative sample per occupied bin (the first one in sample order)
        self.representative = first.astype(np.int64)

    def _image(self, flat_values: np.ndarray) -> np.ndarray:
        return flat_values.reshape(self.bins, self.bins)

    def counts(self) -> np.ndarray:
        """(bins, bins) number of points per bin (rows = y)."""
        return self._image(np.bincount(self.flat, minlength=self.bins**2).astype(np.float64))

    def mean(self, values: np.ndarray) -> np.ndarray:
        """(bins, bins) mean of ``values`` per bin, NaN where empty."""
        counts = np.bincount(self.flat, minlength=self.bins**2).astype(np.float64)
        sums = np.bincount(self.flat, weights=np.asarray(values, dtype=np.float64), minlength=self.bins**2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._image(np.where(counts > 0, sums / counts, np.nan))

    def mode(self, codes: np.ndarray, k: int) -> np.ndarray:
        """(bins, bins) most frequent category code per bin, NaN where empty."""
        table = np.zeros((k, self.bins**2))
        for c in range(k):
            table[c] = np.bincount(self.flat[codes == c], minlength=self.bins**2)
        out = np.argmax(table, axis=0).astype(np.float64)
        out[table.sum(axis=0) == 0] = np.nan
        return self._image(out)

    def bin_of(self, samples: np.ndarray) -> np.ndarray:
        """Flat bin index of each given sample."""
        return self.flat[np.asarray(samples, dtype=np.int64)]


def resolve_color(
    embedding: xr.DataArray | xr.Dataset, color: str | np.ndarray | None,
) -> tuple[np.ndarray | None, str]:
    """Per-sample colour values and their label from a colour key (coord/variable name), an array, or None."""
    if color is None:
        return None, ""
    if isinstance(color, str):
        return sample_values(embedding, color), color
    values = np.asarray(color)
    if values.shape != (embedding.sizes["sample"],):
        raise ValueError(f"color has shape {values.shape}; pass one value per sample ({embedding.sizes['sample']},) "
                         "or the name of a sample coord.")
    return values, "colour"


def density_image(grid: DensityGrid, values: np.ndarray | None, label: str = "") -> dict[str, Any]:
    """Heatmap properties for the density image: log counts, per-bin mean, or per-bin majority class."""
    if values is None:
        counts = grid.counts()
        z = np.where(counts > 0, np.log10(counts + 1.0), np.nan)
        return dict(z=json_safe_grid(z), colorscale=DENSITY, zmin=0.0, zmax=float(np.nanmax(z)), showscale=True,
                    colorbar=dict(title=dict(text="log10(n+1)"), tickvals=None, ticktext=None, thickness=12))
    if is_categorical(values):
        labels, codes = encode_categories(values)
        k = len(labels)
        return dict(z=json_safe_grid(grid.mode(codes, k)), colorscale=discrete_colorscale(k), zmin=-0.5, zmax=k - 0.5,
                    showscale=True, colorbar=dict(title=dict(text=label), tickvals=list(range(k)),
                                                   ticktext=[str(s) for s in labels], thickness=12))
    z = grid.mean(values)
    return dict(z=json_safe_grid(z), colorscale=SEQUENTIAL, zmin=float(np.nanmin(z)), zmax=float(np.nanmax(z)),
                showscale=True,
                colorbar=dict(title=dict(text=label), tickvals=None, ticktext=None, thickness=12))


def hover_data(embedding: xr.DataArray) -> tuple[np.ndarray, str]:
    """customdata (sample, condition, trial, time) and a hovertemplate showing them."""
    n = embedding.sizes["sample"]
    cols, lines = [np.arange(n)], ["sample %{customdata[0]}"]
    for j, name in enumerate(HOVER_COORDS, start=1):
        if name in embedding.coords and embedding[name].dims == ("sample",):
            cols.append(embedding[name].values)
            fmt = ":.3f" if embedding[name].dtype.kind == "f" else ""
            lines.append(f"{name} %{{customdata[{len(cols) - 1}]{fmt}}}")
    return np.array(cols, dtype=object).T, "<br>".join(lines) + "<extra></extra>"


def embedding_scatter(
    embedding: xr.DataArray | xr.Dataset,
    color: str | np.ndarray | None = None,
    dims: int = 2,
    webgl: bool = True,
    *,
    max_points: int = 50_000,
    bins: int = 200,
    title: str | None = "Embedding",
) -> go.Figure:
    """Scatter of ``embedding`` (sample, latent) in 2-D or 3-D, coloured by a sample coord or array.

    ``embedding`` may be the results Dataset (``MARBLE.results``): ``color`` then names any of its
    per-sample variables, e.g. ``"hand_velocity[0]"``.

    Categorical colours use the palette with labelled colour-bar ticks, continuous ones the
    sequential scale; hover shows sample/condition/trial/time. Above ``max_points`` samples a 2-D
    plot switches to the density fast path (traces "density" + "hit"); otherwise one trace "points".
    """
    source = embedding
    if isinstance(embedding, xr.Dataset):
        require_vars(embedding, ("embedding",), "embedding", EMB_HINT)
        embedding = embedding["embedding"]
    require_dims(embedding, ("sample", "latent"), "embedding", EMB_HINT)
    if dims not in (2, 3) or embedding.sizes["latent"] < dims:
        raise ValueError(f"dims must be 2 or 3 and at most the embedding's {embedding.sizes['latent']} latent dims; "
                         f"got {dims!r}.")
    values, label = resolve_color(source, color)
    pts = embedding.values
    names = [f"latent {int(i)}" for i in embedding["latent"].values[:dims]] if "latent" in embedding.coords \
        else [f"latent {i}" for i in range(dims)]
    if dims == 2 and pts.shape[0] > max_points:
        fig = density_figure(DensityGrid(pts, bins), values, label)
    else:
        custom, template = hover_data(embedding)
        coords = dict(x=pts[:, 0], y=pts[:, 1]) if dims == 2 else dict(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2])
        cls = go.Scatter3d if dims == 3 else (go.Scattergl if webgl else go.Scatter)
        size = 3 if dims == 3 else (4 if pts.shape[0] > 2000 else 6)
        fig = go.Figure(cls(**coords, mode="markers", name="points", customdata=custom, hovertemplate=template,
                            showlegend=False, marker=dict(size=size, opacity=0.85, **marker_color(values, label))))
    if dims == 3:
        fig.update_layout(scene=dict(xaxis_title=names[0], yaxis_title=names[1], zaxis_title=names[2]))
    else:
        fig.update_layout(xaxis_title=names[0], yaxis_title=names[1], dragmode="lasso")
    n_lat = embedding.sizes["latent"]
    shown = f"latent 0–{dims - 1} of {n_lat}" if dims < n_lat else f"all {n_lat} latent dims"
    return apply_theme(fig, title, subtitle=f"{pts.shape[0]:,} samples · {shown} · one dot per time step")


def density_figure(grid: DensityGrid, values: np.ndarray | None = None, label: str = "") -> go.Figure:
    """Fast-path figure: trace 0 "density" (image in data coords), trace 1 "hit" (bin centres).

    The hit layer's customdata holds each bin's representative sample (precomputed in ``grid``).
    """
    heat = go.Heatmap(x=grid.centers[0], y=grid.centers[1], name="density", hoverinfo="skip",
                      **density_image(grid, values, label))
    cx = grid.centers[0][grid.occupied % grid.bins]
    cy = grid.centers[1][grid.occupied // grid.bins]
    hit = go.Scattergl(x=cx, y=cy, mode="markers", name="hit", showlegend=False,
                       customdata=grid.representative, marker=dict(size=6, color="rgba(0,0,0,0)"),
                       hovertemplate="sample %{customdata}<extra></extra>")
    return go.Figure([heat, hit])
