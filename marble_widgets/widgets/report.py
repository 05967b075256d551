"""The offline HTML report of a dashboard: a summary header and a responsive grid of captioned panels.

:meth:`Dashboard.to_html` calls :func:`report_html`; :func:`model_summary` collects the facts shown
in the header (data set, model parameters, training) from results the model already holds.
"""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import plotly.graph_objects as go
import xarray as xr

from marble_widgets.plotting.theme import FONT, INK, PALETTE, SUBTLE
from marble_widgets.widgets._base import promote_subtitle
from marble_widgets.widgets.text import VIEW_TEXT

#: Height (px) of each view in the report; views in WIDE span both grid columns.
REPORT_HEIGHTS = {"state": 560, "neighbourhood": 560, "local": 460, "features": 520, "embedding": 460,
                  "behaviour": 300, "raster": 320, "heatmap": 480, "mds": 480, "overlay": 460, "loss": 380}
WIDE = {"features", "behaviour", "raster", "loss"}
#: Sections laid out in three columns on wide screens (three small, square-ish views).
THREE_COLUMNS = {"Alignment"}
SHOWN_PARAMS = ("order", "k", "delta", "out_dim", "hidden_channels", "diffusion", "local_gauges",
                "include_positions", "lr", "batch_size")

CSS = f"""
*{{box-sizing:border-box}}
body{{font-family:{FONT};margin:0;background:#f5f6f8;color:{INK}}}
.mw-report{{max-width:1680px;margin:0 auto;padding:24px 28px 40px}}
.mw-report-header{{background:white;border:1px solid #e5e7eb;border-radius:10px;padding:18px 22px;
  border-top:4px solid {PALETTE[0]};margin-bottom:22px}}
.mw-report-header h1{{font-size:22px;margin:0 0 4px;font-weight:650}}
.mw-report-header .mw-sub{{color:{SUBTLE};font-size:13px;margin-bottom:14px}}
.mw-facts{{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:14px}}
.mw-facts section{{background:#fafbfc;border:1px solid #eef0f3;border-radius:8px;padding:10px 14px}}
.mw-facts h3{{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:{SUBTLE};margin:0 0 6px}}
.mw-facts table{{border-collapse:collapse;width:100%;font-size:13px}}
.mw-facts td{{padding:2px 0;vertical-align:top}}
.mw-facts td:first-child{{color:{SUBTLE};padding-right:12px;white-space:nowrap}}
.mw-facts td:last-child{{font-variant-numeric:tabular-nums;text-align:right}}
.mw-section{{margin-bottom:26px}}
.mw-section h2{{font-size:17px;margin:0 0 10px;font-weight:650}}
.mw-grid{{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));grid-auto-flow:row dense;gap:16px}}
.mw-grid.mw-grid-3{{grid-template-columns:repeat(3,minmax(0,1fr))}}
@media (max-width:1100px){{.mw-grid,.mw-grid.mw-grid-3{{grid-template-columns:minmax(0,1fr)}}}}
.mw-export-view{{background:white;border:1px solid #e5e7eb;border-radius:10px;padding:12px 14px 6px;min-width:0}}
.mw-export-view.mw-wide{{grid-column:1/-1}}
.mw-export-view h4{{font-size:14px;margin:0 0 2px;font-weight:600}}
.mw-export-view .mw-caption{{font-size:12.5px;color:{SUBTLE};margin:0 0 4px;line-height:1.35}}
.mw-footer{{color:{SUBTLE};font-size:12px;text-align:center;margin-top:10px}}
"""


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


def _facts_html(summary: dict[str, list[tuple[str, str]]]) -> str:
    cards = []
    for heading, rows in summary.items():
        body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
        cards.append(f"<section><h3>{html.escape(heading)}</h3><table>{body}</table></section>")
    return f"<div class='mw-facts'>{''.join(cards)}</div>"


def _panel_html(key: str, fig: go.Figure, first: bool) -> str:
    tab, name = key.split("/", 1)
    label, caption = VIEW_TEXT.get(name, (name, ""))
    fig = promote_subtitle(go.Figure(fig))
    fig.update_layout(height=REPORT_HEIGHTS.get(name, 440), width=None, autosize=True)
    div_id = "mw-fig-" + key.lower().replace("/", "-").replace(" ", "-")
    body = fig.to_html(full_html=False, include_plotlyjs=first, div_id=div_id,
                       config={"responsive": True, "displaylogo": False})
    wide = " mw-wide" if name in WIDE else ""
    return (f"<article class='mw-export-view{wide}' data-view='{html.escape(key)}'><h4>{html.escape(label)}</h4>"
            f"<p class='mw-caption'>{html.escape(caption)}</p>{body}</article>")


def report_html(title: str, summary: dict[str, list[tuple[str, str]]] | None, figures: dict[str, go.Figure],
                subtitle: str = "") -> str:
    """One offline HTML page: header with ``summary``, then one section per tab of captioned panels.

    ``figures`` are keyed ``"<tab>/<view>"``; plotly.js is embedded once (in the first panel).
    """
    tabs: dict[str, list[str]] = {}
    for k, (key, fig) in enumerate(figures.items()):
        tabs.setdefault(key.split("/", 1)[0], []).append(_panel_html(key, fig, k == 0))
    sections = "".join(
        f"<section class='mw-section' id='mw-section-{tab.lower().replace(' ', '-')}'><h2>{html.escape(tab)}</h2>"
        f"<div class='mw-grid{' mw-grid-3' if tab in THREE_COLUMNS else ''}'>{''.join(panels)}</div></section>"
        for tab, panels in tabs.items())
    facts = _facts_html(summary) if summary else ""
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><main class='mw-report'>"
            f"<header class='mw-report-header'><h1>{html.escape(title)}</h1>"
            f"<div class='mw-sub'>{html.escape(subtitle)}</div>{facts}</header>{sections}"
            "<div class='mw-footer'>static export of a marble_widgets dashboard · hover for values, drag to "
            "rotate/zoom · open the notebook for the linked, live views</div></main></body></html>")
