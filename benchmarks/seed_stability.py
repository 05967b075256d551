"""Seed stability and model selection: how much MARBLE's result moves with the training seed.

Why (issue 16): a decoding figure that moves by a centimetre with the seed, or with the rule
that picks the decoder's k, cannot be reported. This benchmark trains every setting with
several seeds on the same data and reports, in one run and next to the input baseline:

Rat Buddy, the protocol of ``benchmarks/fidelity.py``: the first 80 % of the session fits the
preprocessing (PCA-10 of 250-ms-smoothed rates) and MARBLE, the last 20 % is embedded with its
own graph and scored. Position is decoded with :func:`marble_widgets.analysis.train_test_decode`
(cosine kNN trained on the first 80 %, k chosen by contiguous CV on it) with k chosen by the
median absolute error AND by R^2; both are reported (median absolute error, cm).

- mean and SD over seeds of both figures, per setting;
- seed-to-seed consistency: :func:`marble_widgets.analysis.consistency` of the seeds' training
  embeddings (100 position bins per running direction, unit-norm bin means, R^2 of an affine
  map), mean and minimum over all ordered pairs of seeds, with the chance level of random
  Gaussian embeddings of the same dimension (in-sample R^2 grows with the dimension). The
  paper's consistency figures use 3-D models: part ``consistency_3d`` repeats it with
  ``out_dim=3`` versions of the paper's recipe and the recommended settings;
- decoding error over training for one seed: for the paper's recipe (ReduceLROnPlateau) a run of
  ``E`` epochs with ``selection="last"`` is exactly the state after epoch ``E`` of the 100-epoch
  run (the schedule and the random streams do not depend on the budget), so the curve shows
  how much the kept state would move with the epoch picked; for a cosine schedule the annealing
  depends on the budget, and the curve is what a user gets when training for ``E`` epochs;
- controls: the input (PCA-10) decoded directly, a time-shuffled control (spike-count bins
  permuted in time against the behaviour before smoothing and PCA, in both parts: the embedding
  must not decode position) and chance (training positions permuted against the embedding).

MC_Maze_Small (part ``macaque``): fold 0 of ``fidelity.py``'s trial-wise stratified 5 folds; hand
velocity R^2 of the per-bin ridge decoder over seeds, for the paper's macaque recipe, the
same changes as the rat's recommended settings, and the recipe table's ``macaque_tuned`` (seeds) and
``macaque_ensemble_concat`` (3 ensembles of 3, members side by side; one graph over all trials).

InfoNCE screen (``--infonce T [T ...]``, runs only this part): the recommended settings with
``loss="infonce"`` at each temperature ``T``, over ``--seeds`` seeds - decoding both ways, the
seed-to-seed consistency, and the 3-D consistency (``out_dim=3``) - next to the input in the
same run; written to the JSON key ``infonce`` (rows merged by name, the other keys untouched).
The recommended (sigmoid) figures to compare with are the ``rat``/``consistency_3d`` rows of the
same seeds.

Ensembles (part ``ensemble``, :class:`marble_widgets.ensemble.MARBLEEnsemble`): 5 ensembles of 3 and
3 ensembles of 5 recommended models (the same 15 fits), disjoint seeds within a shape (seeds m*e..m*e+m-1),
each member rotated by orthogonal Procrustes onto the members' common frame, fitted on the training
embeddings only (row by row, or on position-binned means per direction), and averaged. Reported in
one run next to the input, the paper's recipe (seeds 0-2, 32-D) and the recommended single models
(the 15 member seeds): decoding both ways (mean and SD over ensemble seeds / seeds), consistency at
``out_dim`` 32 and 3. ``--cache-dir DIR`` keeps each fit's two embeddings (keyed by a hash of the
settings and the seed) so the part can be re-analysed without refitting.

The recipe table (part ``recipes``): every named rat recipe as shipped (``marble_widgets.recipes``), in one run
next to the input: single-model recipes over ``--seeds`` seeds (the paper's over 3), ensemble recipes over 3
ensemble seeds; decoding both ways, consistency of the shipped embedding and of its 3 leading principal
axes (fitted on the training part). With ``--cache-dir`` the fits are shared with part ``ensemble``.

The parts live in ``seed_stability_rat``, ``seed_stability_ensembles`` and ``seed_stability_macaque``
(shared: ``seed_stability_common``); this script runs them, merges and prints; every name stays importable here.

Run: ``python benchmarks/seed_stability.py [--seeds 5] [--quick] [--only rat consistency_3d macaque ensemble recipes]``
(default: rat and consistency_3d) or ``python benchmarks/seed_stability.py --seeds 3 --infonce 0.1 0.3``.
Prints a table and writes benchmarks/results/seed_stability.json (every seed's figures; parts
not run keep their last figures).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seed_stability_common  # noqa: E402,F401  (first: it sets one BLAS thread before numpy loads)
from _common import peak_rss_mb, print_table, write_json, RESULTS  # noqa: E402
from seed_stability_common import (  # noqa: E402,F401  (re-exported: scripts and tests import them from here)
    _jsonable,
    _latent,
    chance_consistency,
    controls,
    CURVE_EPOCHS,
    decode_position,
    epoch_curve,
    fit_embed,
    labelled,
    N_CHANCE,
    PARTS,
    POSITION_RANGE,
    rat_flow_fields,
    RAT_INPUT,
    rat_setting,
    RAT_SETTINGS,
    RECOMMENDED,
    RECOMMENDED_BASE,
    seed_consistency,
    settings_for,
    STABLE_CHANGES,
    table,
)
from seed_stability_rat import (  # noqa: E402,F401  (re-exported: scripts and tests import them from here)
    _as_row,
    infonce_settings,
    merge_infonce,
    run_consistency_3d,
    run_infonce,
    run_rat,
    write_infonce,
)
from seed_stability_ensembles import (  # noqa: E402,F401  (re-exported: scripts and tests import them from here)
    _cache_name,
    _decoding_row,
    _summary,
    cached_fit,
    combine_members,
    ENSEMBLE_ALIGN,
    ENSEMBLE_SHAPES,
    PAPER_SEEDS_ENSEMBLE_PART,
    project,
    recipe_fits,
    RECIPE_PART,
    RECIPE_PART_ENSEMBLES,
    run_ensemble,
    run_recipes,
)
from seed_stability_macaque import (  # noqa: E402,F401  (re-exported: scripts and tests import them from here)
    macaque_recipe_rows,
    MC_RECIPES,
    run_macaque,
)


def merged(results: dict[str, Any]) -> dict[str, Any]:
    """The committed JSON with the parts just run replaced (the other parts keep their figures)."""
    import json

    from _common import RESULTS

    path = RESULTS / "seed_stability.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    keep = {k: v for k, v in old.items() if k not in ("machine", "date", "table")}
    return {**keep, **results}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the chosen parts, print the table and write benchmarks/results/seed_stability.json."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="training seeds per setting (0..n-1)")
    parser.add_argument("--quick", action="store_true", help="30 epochs, 2 seeds (smoke run; JSON not written)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=["rat", "consistency_3d"],
                        help="parts to run (the JSON keeps the other parts' last figures)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="part 'ensemble': keep every fit's embeddings here and reuse them "
                             "(keyed by settings and seed)")
    parser.add_argument("--infonce", nargs="+", type=float, metavar="T",
                        help="run only the InfoNCE screen at these temperatures (JSON key 'infonce')")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = tuple(range(2 if args.quick else args.seeds))
    if args.infonce:
        print(f"rat Buddy, InfoNCE at T = {args.infonce} ...", flush=True)
        part = run_infonce(tuple(args.infonce), seeds, args.quick)
        results = write_infonce(part) if not args.quick else {"infonce": part}
        print()
        print_table([r for r in table(results) if "infonce" in r["method"]],
                    ["data", "method", "cm (k by median)", "cm (k by R2)", "consistency mean/min",
                     "3-D consistency", "seconds"])
        print(f"input: {part['rows'][0]}")
        return results
    t0 = time.perf_counter()
    results: dict[str, Any] = {"stable_changes": STABLE_CHANGES, "recommended_base": RECOMMENDED_BASE}
    rat = settings_for("rat")
    focus = ("paper recipe (spec 2.4)", RECOMMENDED)
    if "rat" in args.only:
        print("rat Buddy ...", flush=True)
        results["rat"] = run_rat(rat, seeds, args.quick, curve_for=focus, controls_for=focus[1:])
    if "consistency_3d" in args.only:
        print("rat Buddy, 3-D models ...", flush=True)
        results["consistency_3d"] = run_consistency_3d({k: v for k, v in rat.items() if k in focus}, seeds, args.quick)
    if "macaque" in args.only:
        print("MC_Maze_Small ...", flush=True)
        results["macaque"] = run_macaque(settings_for("macaque"), seeds, args.quick)
    if "ensemble" in args.only:
        shapes = ((2, 2),) if args.quick else ENSEMBLE_SHAPES
        print(f"rat Buddy, ensembles (members, ensembles) {shapes} ...", flush=True)
        results["ensemble"] = run_ensemble(shapes, args.quick, args.cache_dir)
    if "recipes" in args.only:
        print(f"rat Buddy, recipes {RECIPE_PART} ...", flush=True)
        results["recipes"] = run_recipes(RECIPE_PART, len(seeds), args.quick, args.cache_dir)
    results[f"seconds_{'_'.join(args.only)}"] = time.perf_counter() - t0
    results["peak_rss_mb"] = peak_rss_mb()
    if not args.quick:
        results = merged(results)
    rows = table(results)
    print()
    print_table(rows, ["data", "method", "cm (k by median)", "cm (k by R2)", "consistency mean/min",
                       "3-D consistency", "velocity R2", "seconds"])
    if "recipes" in results:
        print(f"recipe table: '3-D consistency' = {results['recipes']['consistency_3d_means']} (other parts: "
              f"3-D models, out_dim=3)")
    for part in ("rat", "consistency_3d"):
        if part in results:
            key = "consistency_chance" if part == "rat" else "chance"
            print(f"{part}: consistency of random Gaussian embeddings: {results[part][key]}")
    if not args.quick:
        write_json("seed_stability", {**results, "table": rows})
    return results


if __name__ == "__main__":
    main()
