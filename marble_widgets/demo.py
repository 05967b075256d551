"""The README's main job: load the bundled recordings and write an offline HTML overview.

Run with ``python -m marble_widgets.demo --out out`` (``make demo``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

import marble_widgets as mw


def overview_figure(rec, ff) -> go.Figure:
    """Raster, position and the first two PCs of the flow field for a continuous recording."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=False, vertical_spacing=0.08,
                        subplot_titles=("spike counts (unit x time)", "position (m)", "state space: PC1 vs PC2"))
    window = rec.isel(time=slice(0, 2400))
    fig.add_trace(go.Heatmap(z=window["spike_counts"].values.T, x=window["time"].values,
                             colorscale="Greys", showscale=False), row=1, col=1)
    fig.add_trace(go.Scattergl(x=window["time"].values, y=window["position"].values, mode="lines",
                               line={"color": "#0072B2"}), row=2, col=1)
    x = ff["x"].values
    fig.add_trace(go.Scattergl(x=x[:, 0], y=x[:, 1], mode="markers",
                               marker={"size": 3, "color": ff["position"].values, "colorscale": "Viridis"}),
                  row=3, col=1)
    fig.update_layout(height=1000, template="plotly_white", showlegend=False,
                      title="Rat CA1 'Buddy' (Grosmark & Buzsaki 2016): recording and MARBLE input")
    return fig


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="out", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rec = mw.datasets.rat_hippocampus()
    ff = mw.flow_field(rec, n_components=10, smooth=0.25)
    html = out / "demo.html"
    overview_figure(rec, ff).write_html(html, include_plotlyjs=True)
    summary = {"recording": rec.attrs["source"], "n_units": int(rec.sizes["unit"]),
               "n_samples": int(ff.sizes["sample"]), "seconds": round(time.perf_counter() - t0, 2)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {html.resolve()} (open it in a browser) and {(out / 'summary.json').resolve()}")
    return html


if __name__ == "__main__":
    main()
