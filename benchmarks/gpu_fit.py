"""GPU vs CPU: one MARBLE fit + transform of 10^5 points on each device, same data, same seed.

Why (issue 15): ``device="cuda"`` must run the fit and the transform on the GPU and be worth it.
The geometry (kNN graph, tangent frames, transport; numpy/scipy) is built on the CPU either way;
the derivative operators, the features, the network and the training live on ``device``. Each row
gives the stage seconds of ``MARBLE.fit`` (``timings_``), seconds per epoch (epoch callback), the
transform's seconds and how far the device's embedding is from the CPU's (different summation
orders, so close but not bitwise). Without CUDA (``torch.cuda.is_available()`` False) the CUDA
row says so and only the CPU row is measured.

Data: ``engine_scaling.manifold_cloud`` (a smooth 3-D manifold in R^5 with a tangent field), order 2,
k = 20, local gauges, diffusion on (the default). ``--batch-sizes``: one row per device and size. At
the paper's 64 anchors a training step is a few hundred tiny kernels, so the GPU waits on their
launches; larger minibatches are where it pays (measured on an H200: benchmarks/results/gpu_fit.json).

Run: ``python benchmarks/gpu_fit.py [--n 100000] [--epochs 5] [--devices cpu cuda]
[--batch-sizes 64 1024]``; writes benchmarks/results/gpu_fit.json (``--json-name`` for another name,
``--no-json`` to only print). On a lent GPU machine (the device tool), from the repository root:
``PYTHONPATH=. python3 benchmarks/gpu_fit.py --batch-sizes 64 1024`` -- ``import marble_widgets``
and the fit need only numpy, scipy, scikit-learn, xarray, torch and torch-geometric, which its image
holds; ``python3 -m pytest tests/test_gpu.py`` checks the GPU path there.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table, write_json  # noqa: E402
from engine_scaling import manifold_cloud  # noqa: E402

PARAMS = {"order": 2, "k": 20, "local_gauges": True, "patience": None, "seed": 0, "verbose": False}


def _synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def fit_on(device: str, ff: Any, epochs: int, batch_size: int) -> tuple[dict[str, Any], np.ndarray]:
    """Stage seconds, seconds per epoch and transform seconds of one fit on ``device``; its embedding."""
    import torch

    from marble_widgets import MARBLE

    MARBLE(epochs=1, device=device, **PARAMS).fit(ff.isel(sample=slice(0, 500)))  # first-use costs
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    elapsed: list[float] = []
    model = MARBLE(epochs=epochs, device=device, batch_size=batch_size, **PARAMS)
    t0 = time.perf_counter()
    model.fit(ff, callback=lambda info: elapsed.append(info["elapsed"]))
    _synchronize(device)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    z = model.transform(ff).values
    transform_s = time.perf_counter() - t0
    row = {"device": device, "batch_size": batch_size, "fit_s": fit_s, **model.timings_,
           "epoch_s": float(np.diff([0.0, *elapsed]).mean()), "transform_s": transform_s,
           "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else "",
           "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"}
    return row, z


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="points (issue target: 10^5)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64],
                        help="anchors per minibatch (64: the paper's); one row per device and size")
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--json-name", default="gpu_fit", help="writes benchmarks/results/<name>.json")
    args = parser.parse_args(argv)
    import torch

    from marble_widgets import flow_field_from_arrays

    ff = flow_field_from_arrays(*manifold_cloud(args.n))
    rows, embeddings, skipped = [], {}, {}
    for device in args.devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            skipped[device] = "not measured: torch.cuda.is_available() is False on this machine"
            continue
        for batch_size in args.batch_sizes:
            row, embeddings[device, batch_size] = fit_on(device, ff, args.epochs, batch_size)
            rows.append(row)
    for row in rows:  # against the CPU fit of the same batch size, when there is one
        cpu = next((r for r in rows if r["device"] == "cpu" and r["batch_size"] == row["batch_size"]), None)
        if cpu is None:
            continue
        row["max_abs_diff_vs_cpu"] = float(np.abs(embeddings[row["device"], row["batch_size"]]
                                                  - embeddings["cpu", row["batch_size"]]).max())
        if row is not cpu:
            row["speedup_fit"] = cpu["fit_s"] / row["fit_s"]
            row["speedup_epoch"] = cpu["epoch_s"] / row["epoch_s"]
    print(f"\nMARBLE fit of {args.n} points ({args.epochs} epochs, order 2, k 20), per device")
    print_table(rows, ["device", "batch_size", "fit_s", "geometry_s", "features_s", "training_s", "epoch_s",
                       "transform_s", "max_abs_diff_vs_cpu", "speedup_fit", "speedup_epoch", "gpu_peak_mb"])
    for device, why in skipped.items():
        print(f"{device}: {why}")
    if not args.no_json:
        command = " ".join(["python", "benchmarks/gpu_fit.py", *(argv or sys.argv[1:])])
        write_json(args.json_name, {"command": command, "n": args.n, "epochs": args.epochs, "params": PARAMS,
                                    "rows": rows, "skipped": skipped, "torch": torch.__version__,
                                    "cpus": os.cpu_count(), "peak_rss_mb": peak_rss_mb(),
                                    "load_average_end": list(os.getloadavg())})


if __name__ == "__main__":
    main()
