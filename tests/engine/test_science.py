"""Slow science checks (spec §15.2): MARBLE orders the van der Pol family and ignores the embedding."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from marble_widgets.data.containers import flow_field_from_arrays
from marble_widgets.estimator import MARBLE

pytestmark = pytest.mark.slow


def _vdp(xy: np.ndarray, mu: float) -> np.ndarray:
    return np.c_[xy[:, 1], mu * (1 - xy[:, 0] ** 2) * xy[:, 1] - xy[:, 0]]


def _lift(xy: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    return np.c_[xy, -((alpha * xy) ** 2).sum(1)]


def van_der_pol_family(mus, n_ic: int = 60, seed: int = 0):
    """Spec §15.2 recipe, smaller: trajectories sampled every 0.5 up to 2.5, lifted to a paraboloid."""
    rng = np.random.default_rng(seed)
    xs, vs = [], []
    for mu in mus:
        state = rng.uniform(-3, 3, (n_ic, 2))
        samples = [state]
        dt = 0.01
        for step in range(1, 251):  # RK4 to t = 2.5
            k1 = _vdp(state, mu)
            k2 = _vdp(state + dt / 2 * k1, mu)
            k3 = _vdp(state + dt / 2 * k2, mu)
            k4 = _vdp(state + dt * k3, mu)
            state = state + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            if step % 50 == 0:
                samples.append(state)
        pts = np.concatenate(samples)
        pts = pts[np.all(np.abs(pts) < 5, axis=1)]
        vel = _vdp(pts, mu)
        xs.append(_lift(pts))
        vs.append(_lift(pts + vel) - _lift(pts))
    return flow_field_from_arrays(xs, vs, conditions=[f"{m:+.3f}" for m in mus])


def ot_distances(emb, labels):
    import ot

    conds = list(dict.fromkeys(labels))
    clouds = [emb[labels == c] for c in conds]
    dist = np.zeros((len(conds), len(conds)))
    for i in range(len(conds)):
        for j in range(i + 1, len(conds)):
            a, b = clouds[i], clouds[j]
            cost = ot.dist(a, b, metric="euclidean")
            dist[i, j] = dist[j, i] = ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost)
    return dist, conds


def mds_1d(dist: np.ndarray) -> np.ndarray:
    """1-D metric MDS started from classical MDS (random starts of 1-D SMACOF get stuck)."""
    from sklearn.manifold import MDS

    try:
        mds = MDS(n_components=1, metric="precomputed", init="classical_mds", random_state=0)
    except TypeError:  # scikit-learn < 1.8: classical MDS by hand
        n = len(dist)
        centre = np.eye(n) - 1.0 / n
        return np.linalg.eigh(-0.5 * centre @ dist**2 @ centre)[1][:, -1]
    return mds.fit_transform(dist)[:, 0]


def test_van_der_pol_family_is_ordered_by_mu():
    mus = np.linspace(-1, 1, 12)
    flow = van_der_pol_family(mus)
    model = MARBLE(order=2, k=20, spacing=0.03, epochs=40, hidden_channels=(32,), out_dim=5,
                   diffusion=False, inner_product_features=False, verbose=False, seed=0)
    emb = model.fit_transform(flow).values
    dist, conds = ot_distances(emb, flow["condition"].values)
    coord = mds_1d(dist)
    rho = spearmanr(coord, [float(c) for c in conds]).statistic
    assert abs(rho) >= 0.9, (rho, dist.round(2))


def _planar_fields(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, (n, 2))
    const = np.tile([1.0, 1.0], (n, 1))
    r = np.sqrt((pts[:, 0] + 1) ** 2 + pts[:, 1] ** 2 + 0.1)
    vortex = np.c_[pts[:, 1], -(pts[:, 0] + 1)] / r[:, None]
    return pts, {"const": const, "vortex": vortex}


def test_flat_and_paraboloid_copies_of_a_field_stay_together():
    pts, fields = _planar_fields()
    flat = np.c_[pts, np.zeros(len(pts))]
    curved = _lift(pts, alpha=0.5)
    xs, vs, names = [], [], []
    for name, vec in fields.items():
        lifted = _lift(pts + 0.05 * vec, alpha=0.5) - curved
        lifted *= np.linalg.norm(vec) / np.linalg.norm(lifted)  # one global rescaling (§15.2)
        xs += [flat, curved]
        vs += [np.c_[vec, np.zeros(len(pts))], lifted]
        names += [f"{name}/flat", f"{name}/curved"]
    flow = flow_field_from_arrays(xs, vs, conditions=names)
    model = MARBLE(order=1, k=10, local_gauges=True, inner_product_features=True, diffusion=False,
                   epochs=40, verbose=False, seed=0)
    emb = model.fit_transform(flow).values
    dist, conds = ot_distances(emb, flow["condition"].values)
    idx = {c: i for i, c in enumerate(conds)}
    same = [dist[idx[f"{f}/flat"], idx[f"{f}/curved"]] for f in fields]
    different = [dist[idx[a], idx[b]] for a in conds for b in conds if a.split("/")[0] != b.split("/")[0]]
    assert max(same) < 0.5 * min(different), (same, min(different))
