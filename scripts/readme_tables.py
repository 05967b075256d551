"""Regenerate the README's figure tables from the benchmarks' JSON (benchmarks/results/*.json).

Run: ``python scripts/readme_tables.py`` (rewrites the block between the README's
``<!-- tables:start -->`` and ``<!-- tables:end -->`` markers; ``--print`` only prints it).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- tables:start -->", "<!-- tables:end -->"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _when(d: dict) -> str:
    m = d.get("machine", {})
    return f"{d.get('date', '?')}, {m.get('cpus', '?')} CPUs"


def fidelity(d: dict) -> str:
    """Decoding/ordering figures of MARBLE next to the baselines computed in the same run."""
    table = d.get("table", [])
    metrics = [k for k in dict.fromkeys(k for r in table for k in r) if k not in ("data", "method", "seconds")]
    rows = [[r["data"], r["method"], *(_fmt(r.get(m)) for m in metrics)] for r in table]
    return (f"**Scientific fidelity** (`benchmarks/fidelity.py`, every baseline in the same run, {_when(d)}):\n\n"
            + _table(["data", "method", *metrics], rows))


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def scaling(d: dict) -> str:
    """Construction and training speed, memory, dense speed-up."""
    train = {r["n"]: r for r in d.get("training", [])}
    rows = []
    for r in d["construction"]:
        t = train.get(r["n"], {})
        rows.append([f"{r['n']:,}", f"{r['construction_s']:.2f}", f"{r['peak_rss_mb']:.0f}",
                     f"{t.get('no_diffusion', {}).get('epoch_s', float('nan')):.2f}",
                     f"{t.get('default', {}).get('epoch_s', float('nan')):.2f}"])
    out = (f"**Engine scaling** (`benchmarks/engine_scaling.py`, 5-D, 3-D manifold, k=20, order 2, local gauges; "
           f"{_when(d)}; log-log slope {d['slopes']['construction_s']['all']:.2f}):\n\n"
           + _table(["points", "construction s", "peak RSS MB", "epoch s (no diffusion)", "epoch s (diffusion)"], rows))
    dense = [[f"{r['n']:,}", f"{r['ours_s']:.2f}", f"{r['dense_s']:.1f}", f"{r['speedup']:.0f}x"
              + ("" if r.get("eigh_measured", True) else " (dense eigh extrapolated)")]
             for r in d.get("dense_vs_ours", [])]
    if dense:
        out += "\n\nSide by side with a naive dense construction (`benchmarks/dense_baseline.py`):\n\n"
        out += _table(["points", "ours s", "dense s", "speed-up"], dense)
    if "buddy" in d:
        b = d["buddy"]
        out += f"\n\nFull fit of the rat Buddy flow field (rat recipe): {b['fit_s']:.1f} s ({b['epochs_run']} epochs)."
    return out


def data_layer(d: dict) -> str:
    rows = [[r["step"], f"{r['seconds']:.3f}"] for r in d["rows"]]
    return f"**Data layer** (`benchmarks/data_layer.py`, {_when(d)}):\n\n" + _table(["step", "seconds"], rows)


def notebooks(d: dict) -> str:
    rows = [[r["notebook"], f"{r['wall_s']:.0f}", f"{r['peak_rss_mb']:.0f}"] for r in d["results"]]
    return (f"**Tutorials** (`benchmarks/notebooks.py`, {_when(d)}; Binder target < 1.5 GB):\n\n"
            + _table(["notebook", "wall s", "peak RSS MB"], rows))


def widget_latency(d: dict) -> str:
    """The dashboard's browser-drawn views (step, pair change, training redraw) beside the retired views."""
    dash = d.get("dashboard")
    old = [[name, str(v["n_points"]), f"{v['median_ms']:.0f}", f"{v['p90_ms']:.0f}"] for name, v in d["variants"].items()]
    text = ("**Dashboard latency** in JupyterLab + headless Chromium (`benchmarks/widget_latency.py`). The retired "
            "FigureWidget views, state change to redrawn figure (kept for comparison):\n\n"
            + _table(["view", "points", "median ms", "p90 ms"], old))
    if not dash:
        return text
    rows = [[host, action, _ms(dash[key][action])] for key, host in (("export", "exported page (file://)"),
                                                                     ("lab", "JupyterLab"))
            for action in ("step", "pair", "training", "raster_step", "raster_follow") if action in dash.get(key, {})]
    return (text + f"\n\nToday's dashboard (`mw.dashboard`: FlowView + RasterView + AlignmentView + TrainingView, rat "
            f"{dash['meta']['n_samples']} samples, median / p90 ms, load {dash['meta']['loadavg_1_5_15'][0]:.1f}, "
            f"{dash['meta']['cpus']} CPUs; export {dash['export']['size_mb']:.1f} MB, JupyterLab kernel -> browser "
            f"{dash['lab']['kernel_to_browser_mb']:.1f} MB"
            + (f"; the dashboard cell run again with the model fitted: every view drawn "
               f"{dash['lab']['dashboard_cell_to_drawn_s']:.2f} s" if "dashboard_cell_to_drawn_s" in dash["lab"] else "")
            + "):\n\n" + _table(["where", "action", "median / p90 ms"], rows))


def cross_animal(d: dict) -> str:
    """Consistency (R^2) between the two rats, both directions, for the recipe and the tuned settings."""
    a, b = "buddy->track_rat", "track_rat->buddy"
    rows = []
    for setting, res in (("recipe", d), ("tuned", d.get("tuned"))):
        if not res:
            continue
        c = res["consistency"]
        named = [("MARBLE, one model per rat", c["marble"]), ("MARBLE, joint model", res["joint_model"]["consistency"]),
                 ("control: Buddy vs Buddy, training seed 1", res["control_rotated_buddy"]["seed_only"])]
        for what, v in named:
            first, second = list(v.values())[:2]
            rows.append([setting, what, f"{first:.2f}", f"{second:.2f}"])
    c = d["consistency"]
    rows += [["input", "PCA-10 flow-field positions", f"{c['input_pca10'][a]:.2f}", f"{c['input_pca10'][b]:.2f}"],
             ["input", "their first 3 PCs (3-D, as the embeddings)", f"{c['input_pca3'][a]:.2f}",
              f"{c['input_pca3'][b]:.2f}"],
             ["chance", "random 3-D embeddings (mean)", f"{c['chance_3d']['mean']:.3f}", ""]]
    return (f"**Cross-animal consistency** (`benchmarks/cross_animal.py`, Buddy vs the linear-track rat, 3-D "
            f"models, {_when(d)}):\n\n" + _table(["setting", "embedding", a, b], rows))


def rnn_study(d: dict) -> str:
    """|Spearman| of MDS axis 1 with gain: MARBLE and the baselines, per network and jointly."""
    metrics = [k for k in dict.fromkeys(k for r in d["table"] for k in r) if k not in ("method", "fields")]
    rows = [[r["method"], r["fields"], *(_fmt(r.get(m)) for m in metrics)] for r in d["table"]]
    return (f"**RNN gain modulation** (`benchmarks/rnn_study.py`, |Spearman| of MDS axis 1 with gain, "
            f"{len(d['networks'])} networks, {d['n_trajectories']} trajectories per gain, {_when(d)}):\n\n"
            + _table(["method", "fields", *metrics], rows))


def _ms(m: dict) -> str:
    return f"{m['median_ms']:.0f} / {m['p90_ms']:.0f}"


def client_view_latency(d: dict) -> str:
    """The browser-drawn FlowView beside today's kernel-driven flow explorer, large clouds, added latency."""
    e, lab, today = d["export"], d.get("lab", {}), d["today"]
    rows = [["FlowView, exported HTML (file://)", "step, all views", _ms(e["step"]), _ms(e["step"]["painted"])]]
    if lab.get("step"):
        rows.append(["FlowView from MARBLE.results, JupyterLab", "step, all views", _ms(lab["step"]),
                     _ms(lab["step"]["painted"])])
    delayed = d.get("lab_delayed")
    if delayed:
        rows.append([f"same, +{delayed['delay_ms_each_way']:.0f} ms each way on the kernel connection",
                     f"step (kernel round trip {delayed['kernel_round_trip']['median_ms']:.0f} ms)",
                     _ms(delayed["step"]), _ms(delayed["step"]["painted"])])
        rows.append(["same, delayed", f"Play: {delayed['play']['fps']:.1f} frames/s", "", ""])
    if lab.get("play"):
        rows.append(["FlowView from MARBLE.results, JupyterLab", f"Play: {lab['play']['fps']:.1f} frames/s", "", ""])
    if lab.get("view_cell_to_drawn_s"):
        rows.append(["FlowView from MARBLE.results, JupyterLab", f"view cell run -> drawn {lab['view_cell_to_drawn_s']:.2f} s, "
                     f"{lab['view_cell_kernel_to_browser_mb']:.1f} MB kernel -> browser", "", ""])
    res = d.get("export_results")
    if res and "play_at_60" in res:
        rows.append(["FlowView from MARBLE.results, exported HTML", f"Play: {res['play']['fps']:.1f} frames/s at the "
                     f"default 30 samples/s, {res['play_at_60']['fps']:.1f} at 60 ({res['size_mb']:.1f} MB)", "", ""])
    rows += [["FlowView, exported HTML", "step, 3-D state view", _ms(e["step_3d_scene"]), _ms(e["step_3d_scene"]["painted"])],
             ["FlowView, exported HTML", "recolour both clouds", _ms(e["recolour"]), ""],
             ["FlowView, exported HTML", f"Play: {e['play']['fps']:.1f} frames/s (3-D: {e['play_3d']['fps']:.1f})", "", ""]]
    for size, big in d.get("large", {}).items():
        for action, label in (("recolour", "recolour"), ("box_selection", "box selection"),
                              ("click_to_jump", "click-to-jump")):
            if action in big:
                rows.append([f"{big['n_points']:,} points", label, _ms(big[action]), _ms(big[action]["painted"])])
        rows.append([f"{big['n_points']:,} points", f"first draw {big['first_draw_s']:.1f} s; pan "
                     f"{big['pan']['fps']:.1f} frames/s", "", ""])
    rows += [["today: flow explorer (JupyterLab)", "step", _ms(today["flow_explorer"]), ""],
             ["today: flow explorer 3-D", "step", _ms(today["flow_explorer_3d"]), ""],
             ["today: embedding explorer, 10^5 points", "recolour", _ms(today["embedding_1e5_recolor"]), ""]]
    return (f"**Browser-drawn views** (`benchmarks/client_view_latency.py`, rat {d['meta']['n_samples']} samples, "
            f"key press to changed frame, median / p90 ms; export {e['size_mb']:.1f} MB vs 8.4 MB today; "
            f"load {d['meta']['loadavg_1_5_15'][0]:.1f}, {d['meta']['cpus']} CPUs):\n\n"
            + _table(["view", "action", "changed frame", "painted"], rows))


def cross_animal_decoding(d: dict) -> str:
    """Position decoded across the two rats, both ways, per embedding and alignment, with chance."""
    ways = [k for k in d["rows"][0] if "->" in k]
    rows = [[r["embedding"], r["align"], *(f"{r[w]:.1f}" for w in ways)] for r in d["rows"]]
    inside = "; ".join(f"{m}: " + ", ".join(f"{n} {v:.1f}" for n, v in per.items())
                       for m, per in d["within_rat_pct"].items())
    return (f"**Across-animal decoding** (`benchmarks/cross_animal_decoding.py`, recipe `{d['recipe']}`, median "
            f"position error in % of the track; within each rat, 80/20 split of the same embeddings: {inside}; "
            f"{_when(d)}):\n\n" + _table(["embedding", "alignment", *ways], rows))


def seed_stability(d: dict) -> str:
    """Decoding mean +- SD over seeds and seed-to-seed consistency, per setting, with the input."""
    metrics = [k for k in dict.fromkeys(k for r in d["table"] for k in r) if k not in ("data", "method", "seconds")]
    rows = [[r["data"], r["method"], *(str(r.get(m, "")) for m in metrics)] for r in d["table"]]
    return (f"**Seed stability** (`benchmarks/seed_stability.py`, 5 seeds (InfoNCE rows: 3), mean +- SD; "
            "rat: fidelity protocol; "
            f"macaque: outer fold 0 only; {_when(d)}):\n\n" + _table(["data", "method", *metrics], rows))


def sessions(d: dict) -> str:
    """Streaming fractions and per-session fits serially vs on dask."""
    rows = [["stream", s["file"], f"{s['size_MB']:.2f} MB", f"summary fetches {s['summary_fetched_pct']:.1f} %",
             f"read {s['read_http_over_local']:.2f}x local time"] for s in d["streaming"]]
    runs = d.get("fit_runs") or {str(d["fit_facts"]["epochs"]): d}
    rows += [["fit", f"{f['run']}, {epochs} epochs (load {run['load_average_start'][0]:.1f})", f"{f['seconds']:.1f} s",
              f"speed-up {f['speedup']:.2f}x", "identical" if f["identical_to_serial"] else "DIFFERENT"]
             for epochs, run in runs.items() for f in run["fits"]]
    lazy = d["lazy_open"]
    rows.append(["open", f"{lazy['sessions']} sessions lazily", f"{lazy['open_and_graph_s']:.2f} s",
                 f"peak RSS {lazy['process_peak_rss_MB']:.0f} MB", ""])
    return (f"**Sessions and streaming** (`benchmarks/sessions.py`, 127.0.0.1 server; 2 cores; 1-min load at the "
            f"start of each fit run in its row, {d['load_average_start'][0]:.1f} for the streaming and lazy-open rows; "
            f"{_when(d)}):\n\n" + _table(["what", "case", "size/time", "figure", ""], rows))


def joint_geometry(d: dict) -> str:
    """Joint multi-session geometry built condition by condition: serial, dask threads, LocalCluster."""
    rows = [[f"{r['n_points']:,}", r["runner"], f"{r['seconds']:.1f}", f"{r['cpu_s']:.1f}", f"{r['n_edges']:,}",
             f"{r['parent_peak_mb']:.0f}", f"{r['geometry_mb']:.0f}" if r.get("geometry_mb") else "",
             f"{r['parent_build_over_geometry']:.2f}" if r.get("parent_build_over_geometry") else "",
             f"{r['worker_peak_mb']:.0f}" if r.get("worker_peak_mb") else ""]
            for r in d["geometry"]]
    slopes = ", ".join(f"{k} {v:.2f}" for k, v in d["loglog_slope"].items())
    text = (f"**Joint geometry of many sessions** (`benchmarks/joint_geometry.py`, {d['data']}; identical geometry "
            f"from every runner; log-log slope of time vs points: {slopes}; {_when(d)}):\n\n"
            + _table(["points", "runner", "seconds", "CPU s (caller)", "edges", "caller peak MB", "geometry MB",
                       "caller build / geometry", "worker peak MB"], rows))
    train = d.get("training")
    if train:
        rows = [[f"{r['n_points']:,}", r["source"], _fmt(r.get("features_s")), _fmt(r.get("seconds_per_epoch")),
                 _fmt(r.get("memory_above_geometry_mb")),
                 r.get("refused") or ("weights identical to RAM's" if r.get("same_weights_as_ram") else "")]
                for r in train]
        text += (f"\n\nJoint training from RAM vs the on-disk feature store (`--training`; {d['training_setup']}):\n\n"
                 + _table(["points", "features", "feature s", "s per epoch", "MB above geometry", "note"], rows))
    return text


def rat_diverse(d: dict) -> str:
    """The diverse rat ensemble on the fidelity protocol, every baseline of its runs beside it."""
    rows = [[r["method"], _fmt(r["cm_k_by_median"]), _fmt(r["cm_k_by_r2"]),
             *(_consistency_cell(r["consistency"], v) if "consistency" in r else "" for v in ("full", "3 axes"))]
            for r in d["rows"] if r.get("split") == "protocol"]
    targets = d["protocol"]["targets_cm"]
    return (f"**Rat, diverse ensemble** (`benchmarks/exp_rat_diverse.py --stage protocol`, fidelity protocol, "
            f"position cm, mean ± SD over 5 ensembles; issue 16's targets (10 % below the input) "
            f"{targets['k_by_median']:.2f} / {targets['k_by_r2']:.2f} cm; consistency of the fit part's "
            f"embeddings over every pair of ensemble seeds; {_when(d)}):\n\n"
            + _table(["method", "cm (k by median)", "cm (k by R2)", "consistency", "consistency: 3 axes"], rows))


def _consistency_cell(c: dict, view: str) -> str:
    return f"{c[view]['mean']:.3f} (chance {c['chance'][view]['mean']:.3f})" if view in c else ""


def macaque_consistency(d: dict) -> str:
    """Macaque velocity R^2 over seeds and the seed-to-seed consistency of the held-out embeddings."""
    views = ["full", "full, samples", "3 axes", "5 axes", "3 behaviour axes"]
    rows = [[r["method"], f"{r['r2_mean']:.3f} ± {r['r2_sd']:.3f}",
             *(_consistency_cell(r["consistency"], v) if "consistency" in r else "" for v in views)]
            for r in d["rows"] if r["folds"] == [0, 1, 2, 3, 4]]
    return (f"**Macaque seeds** (`benchmarks/exp_macaque_recipes.py --consistency`, 5 seeds x 5 outer folds, "
            f"velocity R2 mean ± SD over seeds; consistency of held-out embeddings over every pair of seeds, "
            f"reach condition x 20-ms bins or sample by sample; {_when(d)}):\n\n"
            + _table(["method", "velocity R2", *(f"consistency: {v}" for v in views)], rows))


SECTIONS: dict[str, Callable[[dict], str]] = {
    "fidelity": fidelity, "cross_animal": cross_animal, "cross_animal_decoding": cross_animal_decoding,
    "engine_scaling": scaling, "data_layer": data_layer, "notebooks": notebooks, "widget_latency": widget_latency,
    "client_view_latency": client_view_latency, "seed_stability": seed_stability,
    "exp_macaque_recipes_consistency": macaque_consistency, "exp_rat_diverse": rat_diverse, "rnn_study": rnn_study,
    "sessions": sessions, "joint_geometry": joint_geometry,
}


def render() -> str:
    parts = [fn(d) for name, fn in SECTIONS.items() if (d := _load(name)) is not None]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--print", action="store_true", help="print the tables instead of rewriting README.md")
    args = parser.parse_args(argv)
    block = render()
    if args.print:
        print(block)
        return
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{block}\n{END}{tail}")
    print(f"rewrote the tables in {readme}")


if __name__ == "__main__":
    main()
