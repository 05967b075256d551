"""Small synthetic results following docs/design.md, built in code (no engine/analysis imports).

Shared by tests/plotting and tests/widgets (the latter adds this folder to sys.path).
"""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

CONDITIONS = ("left", "right", "up")
N_TRIALS, N_TIME, DT = 2, 15, 0.05


def flow_field(n_dim: int = 3, seed: int = 0) -> xr.Dataset:
    """3 conditions x 2 trials x 15 steps on noisy circles; v = forward differences; behaviour vars."""
    rng = np.random.default_rng(seed)
    xs, vs, cond, trial, time, pos, vel = [], [], [], [], [], [], []
    for c, name in enumerate(CONDITIONS):
        for tr in range(N_TRIALS):
            phase = np.linspace(0, 2 * np.pi, N_TIME + 1) + c
            path = np.zeros((N_TIME + 1, n_dim))
            path[:, 0], path[:, 1] = (1 + c) * np.cos(phase), (1 + c) * np.sin(phase)
            path[:, 2:] = 0.3 * c + 0.01 * rng.standard_normal((N_TIME + 1, n_dim - 2))
            path += 0.01 * rng.standard_normal(path.shape)
            xs.append(path[:-1])
            vs.append(np.diff(path, axis=0))
            cond += [name] * N_TIME
            trial += [c * N_TRIALS + tr] * N_TIME
            t0 = (c * N_TRIALS + tr) * (N_TIME + 5) * DT
            time.append(t0 + DT * np.arange(N_TIME))
            pos.append(np.linspace(0, 1, N_TIME))
            vel.append(np.column_stack([np.cos(phase[:-1]), np.sin(phase[:-1])]))
    x, v = np.concatenate(xs), np.concatenate(vs)
    n = x.shape[0]
    order = rng.permutation(n)  # samples need not be stored in time order
    ds = xr.Dataset(
        {"x": (("sample", "dim"), x[order]), "v": (("sample", "dim"), v[order]),
         "position": ("sample", np.concatenate(pos)[order]),
         "hand_velocity": (("sample", "axis"), np.concatenate(vel)[order])},
        coords={"sample": np.arange(n), "dim": [f"PC{i + 1}" for i in range(n_dim)], "axis": ["x", "y"],
                "condition": ("sample", np.array(cond)[order]), "trial": ("sample", np.array(trial)[order]),
                "time": ("sample", np.concatenate(time)[order])},
        attrs={"difference": "forward"},
    )
    return ds


def embedding(ff: xr.Dataset, out_dim: int = 3, seed: int = 1) -> xr.DataArray:
    """A fake embedding: a fixed random linear map of x (sample, latent) with ff's sample coords."""
    w = np.random.default_rng(seed).standard_normal((ff.sizes["dim"], out_dim))
    coords = {k: ff[k] for k in ("condition", "trial", "time")}
    return xr.DataArray(ff["x"].values @ w, dims=("sample", "latent"),
                        coords={"sample": ff["sample"].values, "latent": np.arange(out_dim), **coords},
                        name="embedding")


def with_feature_coords(ds: xr.Dataset) -> xr.Dataset:
    """Add the results schema's ``feature_order``/``_component``/``_direction`` coords, from the names.

    Names follow the engine's layout ("pos PC1", "v2", "d1 v2", "d2 d1 v2"); until ``MARBLE.results``
    lands, test fixtures get the coordinates from here (the package itself never parses names).
    """
    order, component, direction = [], [], []
    for name in map(str, ds["feature"].values):
        toks = name.split()
        if toks[0] == "pos":
            order.append(-1), component.append(order.count(-1) - 1), direction.append("")
        else:
            order.append(len(toks) - 1), component.append(int(toks[-1][1:]) - 1), direction.append(" ".join(toks[:-1]))
    return ds.assign_coords(feature_order=("feature", np.array(order)),
                            feature_component=("feature", np.array(component)),
                            feature_direction=("feature", np.array(direction, dtype=str)))


def inspect(ff: xr.Dataset, k: int = 5, n_tangent: int = 2, seed: int = 2) -> xr.Dataset:
    """A fake results Dataset without the flow field: kNN neighbours (-1 padded for sample 0), random frames."""
    x, v = ff["x"].values, ff["v"].values
    n, d = x.shape
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    neighbors = np.argsort(d2, axis=1)[:, 1:k + 1]
    neighbors[0, -2:] = -1
    rng = np.random.default_rng(seed)
    frame = np.stack([np.linalg.qr(rng.standard_normal((d, n_tangent)))[0] for _ in range(n)])
    transported = np.einsum("sdt,sjd->sjt", frame, v[np.where(neighbors >= 0, neighbors, 0)])
    transported[neighbors < 0] = np.nan
    names = [f"v{i + 1}" for i in range(n_tangent)] + [f"d{j + 1} v{i + 1}" for i in range(n_tangent)
                                                       for j in range(n_tangent)]
    features = rng.standard_normal((n, len(names)))
    return with_feature_coords(xr.Dataset(
        {"neighbors": (("sample", "neighbor"), neighbors), "frame": (("sample", "dim", "tangent"), frame),
         "transported": (("sample", "neighbor", "tangent"), transported),
         "features": (("sample", "feature"), features),
         "embedding": (("sample", "latent"), embedding(ff).values)},
        coords={"sample": np.arange(n), "feature": names},
        attrs={"manifold_dim": n_tangent, "order": 1, "local_gauges": 1},
    ))


def results(ff: xr.Dataset, **kw) -> xr.Dataset:
    """A fake ``MARBLE.results(ff)``: the flow field with the :func:`inspect` variables added on sample."""
    return xr.merge([ff, inspect(ff, **kw)], combine_attrs="override")


def history(n_epochs: int = 12) -> xr.Dataset:
    """A loss history Dataset on epoch (train_loss, val_loss, lr)."""
    e = np.arange(n_epochs)
    return xr.Dataset({"train_loss": ("epoch", 1.0 / (1 + e)), "val_loss": ("epoch", 1.2 / (1 + e)),
                       "lr": ("epoch", 0.01 * 0.9 ** e)}, coords={"epoch": e})


def distances(groups: tuple[str, ...] = CONDITIONS) -> xr.DataArray:
    """A symmetric distance matrix (cond, cond_other) between groups."""
    g = len(groups)
    pos = np.arange(g, dtype=float)
    d = np.abs(pos[:, None] - pos[None, :]) + 0.5 * (1 - np.eye(g))
    return xr.DataArray(d, dims=("cond", "cond_other"), coords={"cond": list(groups), "cond_other": list(groups)},
                        name="distance")


def mds(groups: tuple[str, ...] = CONDITIONS) -> xr.DataArray:
    """MDS coordinates (group, component) of the groups."""
    pts = np.column_stack([np.arange(len(groups), dtype=float), np.linspace(-1, 1, len(groups))])
    return xr.DataArray(pts, dims=("cond", "component"), coords={"cond": list(groups), "component": [0, 1]})


def recording(ff: xr.Dataset, n_unit: int = 7, seed: int = 3) -> xr.Dataset:
    """A continuous recording whose time axis covers the flow field's sample times."""
    t = np.arange(0, float(ff["time"].max()) + 0.5, DT)
    counts = np.random.default_rng(seed).poisson(1.0, (t.size, n_unit)).astype(np.float32)
    return xr.Dataset({"spike_counts": (("time", "unit"), counts), "position": ("time", np.sin(t))},
                      coords={"time": t, "unit": np.arange(n_unit) + 10},
                      attrs={"bin_size": DT, "kind": "continuous"})


# pytest fixtures shared by tests/plotting and tests/widgets (re-exported by their conftest.py)
@pytest.fixture(scope="module")
def ff() -> xr.Dataset:
    return flow_field()


@pytest.fixture(scope="module")
def emb(ff: xr.Dataset) -> xr.DataArray:
    return embedding(ff)


@pytest.fixture(scope="module")
def ins(ff: xr.Dataset) -> xr.Dataset:
    return inspect(ff)


@pytest.fixture(scope="module")
def rec(ff: xr.Dataset) -> xr.Dataset:
    return recording(ff)
