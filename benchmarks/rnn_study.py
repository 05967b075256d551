"""The recurrent-network study (paper Fig. 3, issue 16): MARBLE orders input-gain conditions, the same in every network.

Data: ``mw.datasets.rnn_gain_modulation`` — the shipped rank-2 networks (two trained from different seeds,
two resampled from Gaussian-mixture fits of their connectivity), 20 gains from 1 to 0 on A-A trials,
each network's states in its own 3 PCs. Per gain one *stimulated* field (both stimulus epochs) and one
*unstimulated* field (fixation, delay, decision: the control).

Measured, every figure in this run:
- MARBLE embedding-aware, one model per network, on its 20 stimulated fields; exact OT distances
  between the fields' embeddings; |Spearman| of metric-MDS axis 1 with gain. Consistency across
  networks: mean pairwise Spearman correlation of the networks' distance matrices.
- MARBLE embedding-agnostic, one model for all networks' fields, in four modes: ``inner_product_features=True``
  (the paper's RNN recipe), the same with ``local_gauges=True``, and [ours] ``inner_product_features="invariant"``
  (exact rotation invariants, docs/spec.md §8) without and with local gauges: |Spearman| of the joint MDS
  axis 1 with gain over all conditions (jointly) and per network; the joint OT distances are the paper's
  clustered ones (k-means, 60 clusters).
- Control: the same two analyses on the unstimulated fields.
- Baselines on the same fields: OT distances between the raw vectors, between the PCA positions
  (the fields' own coordinates), between CEBRA-Time embeddings of the positions (5-D like MARBLE's,
  a pointwise ``offset1-model`` so that no receptive field spans two trials; per network and, unaligned,
  jointly; skipped with a note when ``cebra`` does not import) and, jointly, between positions and vectors
  after aligning every network to ``trained0`` by CCA or by a least-squares affine map (both fitted on
  condition-averaged stimulated trajectories).

Defaults are smaller than the paper's (200 trajectories per gain): ``--n-trajectories`` (default 8)
per gain for the stimulated fields, and as many unstimulated samples per condition (fewer
trajectories), so that the run stays near 10 minutes on 2 cores.

Run: ``python benchmarks/rnn_study.py [--quick] [--n-trajectories N]``; writes
benchmarks/results/rnn_study.json (``--quick`` leaves it unchanged). Settings closer to the paper's, for the
joint analysis only: ``--variant NAME [--spacing S] [--n-trajectories N] [--seed S] [--modes ...]`` adds
``variants[NAME]`` (with its command) to the same JSON and leaves the main figures unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from itertools import combinations
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table, write_json  # noqa: E402
from fidelity_common import cebra_available, cebra_embed  # noqa: E402
from marble_widgets.data.containers import as_embedding  # noqa: E402

SEED = 0
N_TRAJ = 8
STIM_STEPS, UNSTIM_STEPS = 50, 210  # samples per trajectory in each kind of field
#: the paper's RNN recipe (docs/spec.md §15.2): k=15, 40 epochs, hidden 64, out 5, no diffusion; but spacing 0 (all
#: samples) instead of 0.01-0.015: near g = 0 the states stay close to rest and furthest-point sampling keeps few
#: points there; the variants at the paper's spacings order the gains less well jointly (invariant / + local gauges:
#: 0.01 -> 0.855 / 0.955, 0.015 -> 0.816 / 0.898, against 0.934 / 0.923 at 0; results/rnn_study.json "variants")
MARBLE_RNN = {"order": 2, "k": 15, "spacing": 0.0, "epochs": 40, "hidden_channels": (64,), "out_dim": 5,
              "diffusion": False, "patience": None}
MAX_POINTS = 300  # exact OT on a seeded subsample of each condition (within a network: 20 conditions)
#: across networks (80 conditions, 3160 pairs) the paper's clustered OT: k-means with 60 clusters on all
#: samples, EMD between the conditions' cluster histograms (docs/spec.md §13.2); exact OT took > 6 min per method
JOINT_OT = {"method": "kmeans", "n_clusters": 60}
#: embedding-agnostic modes across networks (docs/spec.md §5.1): inner products of ambient derivatives (the paper's
#: RNN recipe), inner products in local tangent frames, and [ours] exact rotation invariants of least-squares
#: derivatives (``inner_product_features="invariant"``, ambient axes or tangent frames)
AGNOSTIC_MODES = {"marble_agnostic": {"inner_product_features": True},
                  "marble_agnostic_local": {"inner_product_features": True, "local_gauges": True},
                  "marble_invariant": {"inner_product_features": "invariant"},
                  "marble_invariant_local": {"inner_product_features": "invariant", "local_gauges": True}}
#: the table's name of each agnostic mode
MODE_LABELS = {"marble_agnostic": "MARBLE agnostic (inner products)",
               "marble_agnostic_local": "MARBLE agnostic (+ local gauges)",
               "marble_invariant": "MARBLE invariant [ours]",
               "marble_invariant_local": "MARBLE invariant [ours] (+ local gauges)"}
REFERENCE = "trained0"
CEBRA_ITERATIONS = 1000  # as the rat's CEBRA rows in fidelity.py


# ============================================================================ helpers
def select(ds: xr.Dataset, stimulated: bool, networks: list[str] | None = None,
           n_traj: int | None = None) -> xr.Dataset:
    """The stimulated or unstimulated fields of some networks, optionally their first ``n_traj`` trajectories."""
    keep = ds["stimulated"].values == stimulated
    if networks is not None:
        keep &= np.isin(ds["network"].values, networks)
    if n_traj is not None:
        keep &= (ds["trial"].values % ds.attrs["n_trajectories"]) < n_traj
    return ds.isel(sample=np.flatnonzero(keep))


def ordering(emb: xr.DataArray, ot: dict[str, Any] | None = None) -> dict[str, Any]:
    """OT distances between conditions (exact by default), 1-D metric MDS, |Spearman| of the axis with gain.

    The Spearman is given over all conditions and per network.
    """
    from marble_widgets.analysis import distances, mds

    ot = {"method": "exact", "max_points": MAX_POINTS} if ot is None else ot
    dist = distances(emb, by="condition", seed=SEED, **ot)
    axis = mds(dist, 1, seed=SEED).values[:, 0]
    labels = [str(c).split("|") for c in dist["condition"].values]
    net = np.array([lab[0] for lab in labels])
    gain = np.array([float(lab[1][2:]) for lab in labels])
    per = {n: float(abs(spearmanr(axis[net == n], gain[net == n])[0])) for n in dict.fromkeys(net)}
    return {"spearman": float(abs(spearmanr(axis, gain)[0])), "per_network": per, "dist": dist, "axis": axis}


def training_seed(params: dict[str, Any]) -> int:
    """The seed of every trained model (MARBLE, CEBRA): ``params["seed"]``, else :data:`SEED`."""
    return params.get("seed", SEED)


def fit_embed(ff: xr.Dataset, params: dict[str, Any]) -> tuple[xr.DataArray, float]:
    """MARBLE fitted on ``ff`` and applied to it; returns the embedding and the seconds it took."""
    from marble_widgets import MARBLE

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb = MARBLE(**{**params, "seed": training_seed(params)}, verbose=False).fit_transform(ff)
    return emb, time.perf_counter() - t0


def cebra_time(ff: xr.Dataset, params: dict[str, Any]) -> xr.DataArray | None:
    """CEBRA-Time embedding of the fields' positions (fitted and applied on the same samples), or None without
    ``cebra``. Not reproducible bit for bit: cebra 0.6 seeds its samplers' generators from a nondeterministic
    source (``HasGenerator.__init__`` calls ``generator.seed()``), whatever torch's global seed."""
    if cebra_available() is not None:
        return None
    x = ff["x"].values
    z, _ = cebra_embed(x, x[:1], None, params["out_dim"], CEBRA_ITERATIONS, seed=training_seed(params),
                       arch="offset1-model")
    return as_embedding(ff, z)


def matrix_consistency(dists: dict[str, xr.DataArray]) -> float:
    """Mean pairwise Spearman correlation between networks' condition-distance matrices (upper triangles)."""
    iu = None
    tri = {}
    for name, d in dists.items():
        iu = np.triu_indices(d.shape[0], 1) if iu is None else iu
        tri[name] = d.values[iu]
    pairs = [spearmanr(tri[a], tri[b])[0] for a, b in combinations(tri, 2)]
    return float(np.mean(pairs)) if pairs else float("nan")


def condition_means(ds: xr.Dataset, name: str) -> np.ndarray:
    """One network's condition-averaged stimulated trajectories, ``(gain * step, dim)``: rows matched across
    networks by gain and step (the alignments' training data)."""
    n_gain = len(np.unique(ds["gain"].values))
    part = ds.isel(sample=ds["network"].values == name)
    return part["x"].values.reshape(n_gain, -1, STIM_STEPS, part.sizes["dim"]).mean(axis=1).reshape(
        -1, part.sizes["dim"])


def cca_align(ds: xr.Dataset, networks: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, list[float]]]:
    """Positions and vectors of every network's stimulated samples mapped into ``trained0``'s PC space by CCA.

    CCA (3 components, no scaling) between a network's and the reference's condition-averaged stimulated
    trajectories (rows matched by gain and step); a network's canonical variates, rescaled to the variances
    of the reference's, are mapped back through the reference's canonical transform, so that matched
    variates coincide (exactly when one network is a linear map of the other). Returns the aligned positions,
    vectors (in ``ds`` sample order) and each network's canonical correlations.
    """
    from sklearn.cross_decomposition import CCA

    ref = condition_means(ds, REFERENCE)
    x, v = ds["x"].values.copy(), ds["v"].values.copy()
    corrs = {}
    for name in networks:
        rows = ds["network"].values == name
        if name == REFERENCE:
            corrs[name] = [1.0] * x.shape[1]
            continue
        means = condition_means(ds, name)
        cca = CCA(n_components=x.shape[1], scale=False, max_iter=2000).fit(means, ref)
        su, sv = cca.transform(means, ref)
        r = np.array([np.corrcoef(su[:, c], sv[:, c])[0, 1] for c in range(x.shape[1])])
        corrs[name] = [float(c) for c in r]
        # variate c of this network, rescaled to the variance (and sign) of the reference's variate c
        to_ref = cca.x_rotations_ @ np.diag(np.sign(r) * sv.std(axis=0) / su.std(axis=0)) @ np.linalg.inv(
            cca.y_rotations_)
        x[rows] = (x[rows] - means.mean(axis=0)) @ to_ref + ref.mean(axis=0)
        v[rows] = v[rows] @ to_ref
    return x, v, corrs


def affine_align(ds: xr.Dataset, networks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions and vectors of every network's stimulated samples mapped into ``trained0``'s PC space by the
    least-squares affine map of its condition-averaged trajectories onto the reference's (vectors: the linear
    part). The plainest alignment: a regression where CCA matches correlations."""
    ref = condition_means(ds, REFERENCE)
    x, v = ds["x"].values.copy(), ds["v"].values.copy()
    for name in networks:
        if name == REFERENCE:
            continue
        rows = ds["network"].values == name
        means = condition_means(ds, name)
        coef = np.linalg.lstsq(np.c_[means, np.ones(len(means))], ref, rcond=None)[0]
        x[rows] = x[rows] @ coef[:-1] + coef[-1]
        v[rows] = v[rows] @ coef[:-1]
    return x, v


# ============================================================================ the study
def within_networks(ds: xr.Dataset, networks: list[str], params: dict[str, Any], n_control: int) -> dict[str, Any]:
    """Per network: MARBLE embedding-aware on stimulated fields, its control, raw-vector, PCA-position and
    CEBRA-Time baselines."""
    out: dict[str, Any] = {"marble": {}, "marble_control": {}, "raw_vectors": {}, "pca_positions": {},
                           "raw_vectors_control": {}, "seconds": {}}
    dists: dict[str, xr.DataArray] = {}
    for name in networks:
        stim = select(ds, True, [name])
        ctrl = select(ds, False, [name], n_control)
        emb, secs = fit_embed(stim, params)
        res = ordering(emb)
        dists[name] = res["dist"]
        emb_c, secs_c = fit_embed(ctrl, params)
        out["marble"][name] = res["spearman"]
        out["marble_control"][name] = ordering(emb_c)["spearman"]
        out["raw_vectors"][name] = ordering(as_embedding(stim, stim["v"].values))["spearman"]
        out["pca_positions"][name] = ordering(as_embedding(stim, stim["x"].values))["spearman"]
        out["raw_vectors_control"][name] = ordering(as_embedding(ctrl, ctrl["v"].values))["spearman"]
        cebra = cebra_time(stim, params)
        if cebra is not None:
            out.setdefault("cebra_time", {})[name] = ordering(cebra)["spearman"]
        out["seconds"][name] = secs + secs_c
        print(f"  {name}: MARBLE {res['spearman']:.3f}, control {out['marble_control'][name]:.3f}, "
              f"raw vectors {out['raw_vectors'][name]:.3f}, PCA {out['pca_positions'][name]:.3f} "
              f"({secs + secs_c:.0f} s)", flush=True)
    out["distance_matrix_consistency"] = matrix_consistency(dists)
    return out


def across_networks(ds: xr.Dataset, networks: list[str], params: dict[str, Any], n_control: int,
                    modes: list[str] | None = None) -> dict[str, Any]:
    """All networks in one model per agnostic mode (``modes``: a subset of :data:`AGNOSTIC_MODES`), its control,
    and the joint baselines (raw, PCA, CCA- and affine-aligned)."""
    modes = list(AGNOSTIC_MODES) if modes is None else modes
    stim = select(ds, True, networks)
    ctrl = select(ds, False, networks, n_control)
    embeddings: dict[str, xr.DataArray] = {}
    seconds: dict[str, float] = {}
    for mode in modes:
        extra = AGNOSTIC_MODES[mode]
        embeddings[mode], seconds[mode] = fit_embed(stim, {**params, **extra})
        embeddings[f"{mode}_control"], seconds[f"{mode}_control"] = fit_embed(ctrl, {**params, **extra})
    x_cca, v_cca, corrs = cca_align(stim, networks)
    x_affine, v_affine = affine_align(stim, networks)
    embeddings.update({
        "raw_vectors": as_embedding(stim, stim["v"].values), "pca_positions": as_embedding(stim, stim["x"].values),
        "cca_positions": as_embedding(stim, x_cca), "cca_vectors": as_embedding(stim, v_cca),
        "affine_positions": as_embedding(stim, x_affine), "affine_vectors": as_embedding(stim, v_affine),
    })
    cebra = cebra_time(stim, params)
    if cebra is not None:
        embeddings["cebra_time"] = cebra
    rows = {}
    for key, values in embeddings.items():
        rows[key] = ordering(values, JOINT_OT)
        print(f"  joint {key}: {rows[key]['spearman']:.3f}", flush=True)
    out: dict[str, Any] = {k: {"spearman": r["spearman"], "per_network": r["per_network"]} for k, r in rows.items()}
    for mode in modes:
        out[mode]["mds_axis"] = [float(a) for a in rows[mode]["axis"]]
    out["cca_canonical_correlations"] = corrs
    out["seconds"] = seconds
    return out


def _per(values: dict[str, float]) -> dict[str, Any]:
    """Min and mean of the per-network |Spearman|."""
    v = np.array(list(values.values()))
    return {"per-network min": float(v.min()), "per-network mean": float(v.mean())}


def table(within: dict[str, Any], joint: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per method: per-network |Spearman| (min and mean) and the joint figure."""
    rows = []
    labels = {"marble": "MARBLE aware, per network", "marble_control": "MARBLE aware, per network (control)",
              "raw_vectors": "raw-vector OT, per network", "raw_vectors_control": "raw-vector OT (control)",
              "pca_positions": "PCA-position OT, per network", "cebra_time": "CEBRA-Time OT, per network"}
    for key, label in {k: v for k, v in labels.items() if k in within}.items():
        rows.append({"method": label, "fields": "unstimulated" if "control" in key else "stimulated",
                     **_per(within[key])})
    return rows + joint_table(joint)


def joint_table(joint: dict[str, Any]) -> list[dict[str, Any]]:
    """The joint rows of :func:`table`: every agnostic mode in ``joint`` (and its control), then the baselines."""
    rows = []
    jl = {}
    for mode in AGNOSTIC_MODES:
        jl.update({mode: f"{MODE_LABELS[mode]}, joint", f"{mode}_control": f"{MODE_LABELS[mode]}, joint (control)"})
    jl.update({"raw_vectors": "raw-vector OT, joint", "pca_positions": "PCA-position OT, joint (unaligned)",
               "cca_positions": "CCA-aligned positions OT, joint", "cca_vectors": "CCA-aligned vectors OT, joint",
               "affine_positions": "affine-aligned positions OT, joint",
               "affine_vectors": "affine-aligned vectors OT, joint", "cebra_time": "CEBRA-Time OT, joint (unaligned)"})
    for key, label in {k: v for k, v in jl.items() if k in joint}.items():
        rows.append({"method": label, "fields": "unstimulated" if "control" in key else "stimulated",
                     **_per(joint[key]["per_network"]), "joint": joint[key]["spearman"]})
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Simulate, run every method, print the table and write benchmarks/results/rnn_study.json.

    ``--variant NAME`` runs only the joint analysis (``--modes``, default all) at other settings
    (``--spacing``, ``--n-trajectories``, MARBLE's ``--seed``) and records it, with its command, under
    ``variants[NAME]`` of the same JSON, leaving the main figures as they are.
    """
    import marble_widgets as mw

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 gains, 6 trajectories, 10 epochs (smoke run)")
    parser.add_argument("--n-trajectories", type=int, default=N_TRAJ)
    parser.add_argument("--variant", help="joint analysis only, recorded under variants[VARIANT]")
    parser.add_argument("--spacing", type=float, default=MARBLE_RNN["spacing"], help="furthest-point spacing")
    parser.add_argument("--modes", nargs="+", choices=list(AGNOSTIC_MODES), default=list(AGNOSTIC_MODES))
    parser.add_argument("--seed", type=int, default=SEED, help="MARBLE's training seed (data and OT keep SEED)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    n_traj = 6 if args.quick else args.n_trajectories
    gains = np.linspace(1.0, 0.0, 8 if args.quick else 20)
    params = dict(MARBLE_RNN, epochs=10 if args.quick else MARBLE_RNN["epochs"], spacing=args.spacing,
                  seed=args.seed)
    n_control = max(1, round(n_traj * STIM_STEPS / UNSTIM_STEPS))
    ds = mw.datasets.rnn_gain_modulation("all", gains=gains, n_trajectories=n_traj, seed=SEED)
    networks = list(ds["rnn"].values)
    accuracy = {n: [float(a) for a in ds["accuracy"].sel(rnn=n).values] for n in networks}
    print(f"{len(networks)} networks, {gains.size} gains, {n_traj} trajectories per gain "
          f"({n_control} for the control); accuracy at g = 1 / 0 (from these {n_traj} trajectories): "
          + ", ".join(f"{n} {a[0]:.2f}/{a[-1]:.2f}" for n, a in accuracy.items()), flush=True)
    if args.variant:
        command = " ".join(["python benchmarks/rnn_study.py", *(sys.argv[1:] if argv is None else argv)])
        return run_variant(args, command, ds, networks, params, n_control, t0)
    within = within_networks(ds, networks, params, n_control)
    joint = across_networks(ds, networks, params, n_control, args.modes)
    rows = table(within, joint)
    print()
    print_table(rows, ["method", "fields", "per-network min", "per-network mean", "joint"])
    print(f"\ndistance-matrix consistency across networks (MARBLE aware): "
          f"{within['distance_matrix_consistency']:.3f}")
    results = {
        "seed": SEED, "quick": args.quick, "n_trajectories": n_traj, "n_trajectories_control": n_control,
        "gains": [float(g) for g in gains], "networks": networks, "accuracy_vs_gain": accuracy,
        "explained_variance_ratio": {n: [float(e) for e in ds["explained_variance_ratio"].sel(rnn=n).values]
                                     for n in networks},
        "state_scale": state_scale(ds, networks),
        "params": _json_params(params),
        "max_points": MAX_POINTS, "joint_ot": JOINT_OT, "within": within, "joint": joint, "table": rows,
        "cebra_skipped": cebra_available(),
        "total_seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(),
    }
    print(f"total {results['total_seconds']:.0f} s")
    if args.quick:
        print("quick run: benchmarks/results/rnn_study.json left unchanged")
    else:
        write_json("rnn_study", {**results, "variants": _committed().get("variants", {})})
    return results


def state_scale(ds: xr.Dataset, networks: list[str]) -> dict[str, dict[str, float]]:
    """Per network, RMS distance of the stimulated states from their mean and RMS speed, in its own PC units.

    Why: each network's PCA space has its own scale; the invariant features' ``|f|`` terms depend on it.
    """
    out = {}
    for name in networks:
        stim = select(ds, True, [name])
        x, v = stim["x"].values, stim["v"].values
        out[name] = {"rms_position": float(np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean())),
                     "rms_speed": float(np.sqrt((v**2).sum(1).mean()))}
    return out


def run_variant(args: argparse.Namespace, command: str, ds: xr.Dataset, networks: list[str], params: dict[str, Any],
                n_control: int, t0: float) -> dict[str, Any]:
    """The joint analysis alone at the variant's settings, merged into the committed JSON under ``variants``."""
    joint = across_networks(ds, networks, params, n_control, args.modes)
    rows = joint_table(joint)
    print()
    print_table(rows, ["method", "fields", "per-network min", "per-network mean", "joint"])
    record = {"command": command, "n_trajectories": args.n_trajectories, "n_trajectories_control": n_control,
              "params": _json_params(params), "modes": args.modes, "joint": joint, "table": rows,
              "total_seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}
    print(f"total {record['total_seconds']:.0f} s")
    if args.quick:
        print("quick run: benchmarks/results/rnn_study.json left unchanged")
        return record
    committed = _committed()  # its machine and date stay those of the main figures; the variant has its own
    committed.setdefault("variants", {})[args.variant] = {**record, "date": time.strftime("%Y-%m-%d")}
    write_json("rnn_study", committed)
    return record


def _committed() -> dict[str, Any]:
    """The current benchmarks/results/rnn_study.json (empty when there is none)."""
    path = Path(__file__).resolve().parent / "results" / "rnn_study.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


if __name__ == "__main__":
    main()
