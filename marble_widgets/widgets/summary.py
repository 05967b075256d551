"""The facts a dashboard's header shows: data set, model parameters, training (read, never computed).

:func:`model_summary` collects them from what a fitted model already holds; :func:`header_html`
renders them as the compact header of the live dashboard and of its HTML export.
"""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import xarray as xr

from marble_widgets.plotting.theme import FONT, INK, PALETTE, SUBTLE

SHOWN_PARAMS = ("order", "k", "delta", "out_dim", "hidden_channels", "diffusion", "local_gauges",
                "include_positions", "lr", "batch_size")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "–"
    return str(value)


def _n_parameters(model: Any) -> int | None:
    network = getattr(model, "network_", None)
    params = getattr(network, "parameters", None)
    return int(sum(int(p.numel()) for p in params())) if callable(params) else None


def data_facts(flow_field: xr.Dataset, embedding: xr.DataArray | None) -> list[tuple[str, str]]:
    """Rows describing the flow field: source, samples, dims, conditions, trials, latent size."""
    conds = [str(c) for c in np.unique(flow_field["condition"].values)] if "condition" in flow_field.coords else []
    shown = ", ".join(conds[:6]) + (f" … (+{len(conds) - 6})" if len(conds) > 6 else "")
    rows = [("source", str(flow_field.attrs.get("source", "–"))),
            ("samples", f"{flow_field.sizes['sample']:,}"),
            ("state-space dims", str(flow_field["x"].shape[1])),
            ("conditions", f"{len(conds)}: {shown}" if len(conds) > 1 else (conds[0] if conds else "–"))]
    if "trial" in flow_field.coords:
        rows.append(("trials / segments", str(int(np.unique(flow_field["trial"].values).size))))
    if "time" in flow_field.coords:
        t = flow_field["time"].values.astype(np.float64)
        rows.append(("time span", f"{t.min():.3g} … {t.max():.3g} s"))
    if embedding is not None:
        rows.append(("latent dims", str(embedding.sizes.get("latent", "–"))))
    return rows


def model_summary(model: Any, flow_field: xr.Dataset, embedding: xr.DataArray | None = None
                  ) -> dict[str, list[tuple[str, str]]]:
    """Header facts of a fitted model on ``flow_field``: "Data", "Model" and "Training" rows.

    Reads only what the model already holds (``get_params``, ``loss_history_``, ``best_epoch_``).
    """
    out = {"Data": data_facts(flow_field, embedding)}
    params = model.get_params() if hasattr(model, "get_params") else {}
    rows = [(k, _fmt(params[k])) for k in SHOWN_PARAMS if k in params]
    n_par = _n_parameters(model)
    if n_par is not None:
        rows.append(("network parameters", f"{n_par:,}"))
    if rows:
        out["Model"] = rows
    history = getattr(model, "loss_history_", None)
    if isinstance(history, xr.Dataset) and history.sizes.get("epoch", 0):
        train, val = (history[k].values.astype(np.float64) for k in ("train_loss", "val_loss"))
        n_max = params.get("epochs")
        rows = [("epochs run", f"{train.size}" + (f" of {n_max}" if n_max else ""))]
        best = getattr(model, "best_epoch_", None)
        if best is not None:
            rows.append(("best epoch", str(int(best))))
            rows.append(("val loss at best", f"{val[min(int(best), val.size - 1)]:.4g}"))
        rows += [("final train loss", f"{train[-1]:.4g}"), ("final val loss", f"{val[-1]:.4g}")]
        out["Training"] = rows
    return out


def header_html(title: str, summary: dict[str, list[tuple[str, str]]]) -> str:
    """Compact header: the title and one line of key facts per summary group (class ``mw-dashboard-head``)."""
    lines = "".join(
        f"<div><span style='color:{SUBTLE}'>{html.escape(group)}:</span> "
        + " · ".join(f"{html.escape(k)} <b>{html.escape(v)}</b>" for k, v in rows[:7]) + "</div>"
        for group, rows in summary.items())
    return (f"<div class='mw-dashboard-head' style='font-family:{FONT};color:{INK};border-left:4px solid {PALETTE[0]};"
            f"padding:2px 10px;margin:2px 0 10px 0'><div style='font-size:17px;font-weight:650'>{html.escape(title)}"
            f"</div><div style='font-size:12px;line-height:1.5'>{lines}</div></div>")
