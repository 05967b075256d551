"""Slow science checks (paper Fig. 2): MARBLE orders the van der Pol family and ignores the embedding.

Driven end to end through the package's own data sets, estimator, OT distances and MDS.
"""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.stats import spearmanr

import marble_widgets as mw
from marble_widgets.analysis import distances, mds
from marble_widgets.datasets import concat_fields, paraboloid_field, planar_fields, van_der_pol

pytestmark = pytest.mark.slow


def test_van_der_pol_family_is_ordered_by_mu():
    flow = van_der_pol(np.linspace(-1, 1, 12), n_initial=60)
    model = mw.MARBLE(order=2, k=20, spacing=0.03, epochs=40, hidden_channels=(32,), out_dim=5,
                      diffusion=False, inner_product_features=False, verbose=False, seed=0)
    dist = distances(model.fit_transform(flow), by="condition")
    axis = mds(dist, 1)
    mu = [float(c.split("=")[1]) for c in axis["condition"].values]
    rho = spearmanr(axis.values[:, 0], mu).statistic
    assert abs(rho) >= 0.9, (rho, dist.values.round(2))


def _flat_3d(field: str, n: int) -> xr.Dataset:
    flat = planar_fields([field], n=n)
    padded = xr.concat([flat[["x", "v"]], xr.zeros_like(flat[["x", "v"]].isel(dim=[0]))], dim="dim")
    return padded.assign_coords(dim=["x", "y", "z"])


def test_flat_and_paraboloid_copies_of_a_field_stay_together():
    fields = ("constant_pos", "vortex_left")
    parts = {}
    for name in fields:
        parts[f"{name}/flat"] = _flat_3d(name, 400)
        parts[f"{name}/curved"] = paraboloid_field(name, alpha=0.5, n=400)
    flow = concat_fields(parts)
    model = mw.MARBLE(order=1, k=10, local_gauges=True, inner_product_features=True, diffusion=False,
                      epochs=40, verbose=False, seed=0)
    dist = distances(model.fit_transform(flow), by="condition").to_pandas()
    same = [dist.loc[f"{f}/flat", f"{f}/curved"] for f in fields]
    different = [dist.loc[a, b] for a in dist.index for b in dist.columns if a.split("/")[0] != b.split("/")[0]]
    assert max(same) < 0.5 * min(different), (same, min(different))
