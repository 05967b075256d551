"""Figures of analysis results and training: distance heatmap, MDS map, loss curves."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import xarray as xr

from marble_widgets.plotting.common import json_safe_grid, require_vars
from marble_widgets.plotting.theme import DENSITY, apply_theme, palette_color


def distance_heatmap(dist: xr.DataArray, title: str | None = "Distances between conditions") -> go.Figure:
    """Heatmap of a square distance DataArray (cond, cond_other), e.g. from ``analysis.distances``.

    Rows are the first dim's labels, columns the second's; hover shows both labels and the value.
    """
    if not isinstance(dist, xr.DataArray) or dist.ndim != 2:
        raise TypeError("dist must be a 2-D xarray.DataArray (cond, cond_other) from analysis.distances; "
                        f"got {type(dist).__name__} with ndim={getattr(dist, 'ndim', None)}.")
    rows, cols = ([str(v) for v in dist[d].values] if d in dist.coords else [str(i) for i in range(n)]
                  for d, n in zip(dist.dims, dist.shape))
    text = dict(texttemplate="%{z:.2f}", textfont=dict(size=10)) if len(rows) <= 12 else {}
    fig = go.Figure(go.Heatmap(z=json_safe_grid(dist.values), x=cols, y=rows, colorscale=DENSITY,
                               name="distance", colorbar=dict(title=dict(text="distance"), thickness=12),
                               xgap=1, ygap=1, hovertemplate="%{y} vs %{x}: %{z:.3g}<extra></extra>", **text))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", scaleratio=1, showgrid=False)
    fig.update_xaxes(showgrid=False)
    return apply_theme(fig, title, subtitle=f"{len(rows)} groups · distance between their embedding "
                                            "distributions (darker = farther)")


def mds_map(coords: xr.DataArray, title: str | None = "MDS map") -> go.Figure:
    """Groups placed by their first two MDS components (``analysis.mds``: dims (group, component)).

    One labelled marker per group, coloured like that condition elsewhere (palette by sorted label);
    the single trace is "groups".
    """
    if not isinstance(coords, xr.DataArray) or coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError("coords must be a DataArray (group, component) with at least 2 components "
                         f"(from analysis.mds); got {getattr(coords, 'dims', type(coords).__name__)}.")
    gdim = coords.dims[0]
    labels = [str(v) for v in (coords[gdim].values if gdim in coords.coords else range(coords.shape[0]))]
    xy = coords.values[:, :2].astype(np.float64)
    fig = go.Figure(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers+text", text=labels, name="groups",
                               textposition="top center", hovertemplate="%{text}<extra></extra>",
                               marker=dict(size=13, color=[palette_color(sorted(labels).index(g)) for g in labels],
                                           line=dict(color="white", width=1.5))))
    fig.update_layout(xaxis_title="MDS 1", yaxis_title="MDS 2", showlegend=False)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    fig.update_xaxes(zeroline=False)
    return apply_theme(fig, title, subtitle="groups placed so that map distances match embedding distances")


def loss_curves(history: xr.Dataset | None = None, title: str | None = "Training",
                *, best_epoch: int | None = None) -> go.Figure:
    """Train/validation loss (left axis) and learning rate (right, log axis) per epoch.

    ``history`` is ``MARBLE.loss_history_`` (on ``epoch``: train_loss, val_loss, lr); None gives
    the same three traces empty, ready to be filled live by :class:`TrainingMonitor`.
    ``best_epoch`` (``MARBLE.best_epoch_``) draws a dashed line at the kept weights.
    """
    epoch = train = val = lr = np.zeros(0)
    if history is not None:
        require_vars(history, ("train_loss", "val_loss", "lr"), "history",
                     "MARBLE.loss_history_: a Dataset on epoch with train_loss, val_loss, lr")
        epoch = history["epoch"].values if "epoch" in history.coords else np.arange(history.sizes["epoch"])
        train, val, lr = (history[k].values.astype(np.float64) for k in ("train_loss", "val_loss", "lr"))
    fig = go.Figure([
        go.Scatter(x=epoch, y=train, mode="lines", name="train loss", line=dict(color=palette_color(0), width=2)),
        go.Scatter(x=epoch, y=val, mode="lines", name="val loss", line=dict(color=palette_color(1), width=2)),
        go.Scatter(x=epoch, y=lr, mode="lines", name="lr", yaxis="y2",
                   line=dict(color="rgba(90,90,90,0.7)", width=1, dash="dot")),
    ])
    finite = lr[np.isfinite(lr) & (lr > 0)]
    decades = dict(range=[np.log10(finite.min()) - 1, np.log10(finite.max()) + 1], dtick=1) \
        if finite.size and finite.max() < 10 * finite.min() else {}  # whole decades, not "9 5 3 1"
    fig.update_layout(xaxis_title="epoch", yaxis_title="loss",
                      yaxis2=dict(title="learning rate", overlaying="y", side="right", type="log", showgrid=False,
                                  tickformat=".0e", **decades),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    subtitle = None
    if best_epoch is not None:
        fig.add_vline(x=int(best_epoch), line=dict(color="#9aa1ab", dash="dash", width=1))
        fig.add_annotation(x=int(best_epoch), y=1, yref="paper", yanchor="top", xanchor="left", showarrow=False,
                           text=f"best epoch {int(best_epoch)}", font=dict(size=10, color="#6b7280"))
    if epoch.size:
        best = int(np.nanargmin(val)) if np.isfinite(val).any() else 0
        subtitle = (f"{epoch.size} epochs · final train loss {train[-1]:.4g} · lowest val loss {val[best]:.4g} "
                    f"(epoch {int(epoch[best])})")
    return apply_theme(fig, title, subtitle=subtitle)
