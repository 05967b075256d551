"""``analysis.consistency`` gives CEBRA's ``consistency_score(between="datasets")`` numbers.

Why (issue 16): the paper and CEBRA report across-animal consistency with CEBRA's function, so
ours must reproduce it on the same input. How CEBRA bins (cebra 0.6,
``integrations.sklearn.helpers.align_embeddings``): ``np.digitize`` of the labels on
``linspace(min, max, n)`` edges over all embeddings' labels, then bins 1..n-1, i.e. ``n - 1``
equal-width bins over ``[min, max)``; the samples at exactly the maximum fall past the last edge
and only enter as the +/-1 / +/-2 fallback of an empty last bin. Each bin mean is scaled to unit
norm and every ordered pair is scored by ``LinearRegression().score`` (R^2, uniform average over
outputs). Ours: ``bins`` equal-width bins over ``[min, max]`` (the maximum in the last bin), the
same fallback, unit norm, the same R^2, and an optional ``by`` split CEBRA does not have
(CEBRA takes 1-D labels only). So CEBRA's ``num_discretization_bins=n`` is our ``bins=n - 1``
with ``by=None`` and the maximum-label samples left out (``range`` kept at the full min..max).
"""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from marble_widgets.analysis import consistency

metrics = pytest.importorskip("cebra.integrations.sklearn.metrics")

TRACK = (0.0, 1.6)  # metres, like rat Buddy's track


def _animals(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Four embeddings of different sizes and dimensions: nonlinear maps of position plus noise."""
    rng = np.random.default_rng(seed)
    embeddings, labels = [], []
    for i, (n, dim) in enumerate(((3000, 3), (2500, 3), (4000, 8), (2000, 32))):
        pos = rng.uniform(*TRACK, n)
        phase = np.linspace(0, np.pi, dim)[None, :] + i
        z = np.cos(2.0 * pos[:, None] + phase) + 0.3 * pos[:, None] ** (1 + i % 2)
        embeddings.append(z + 0.2 * rng.standard_normal((n, dim)))
        labels.append(pos)
    labels[1][7] = TRACK[1]  # a sample exactly at the maximum (CEBRA leaves it out of the last bin)
    return embeddings, labels


def _ours(embeddings: list[np.ndarray], labels: list[np.ndarray], bins: int, drop_max: bool) -> np.ndarray:
    """Our consistency matrix's off-diagonal in CEBRA's pair order (row-major: source, then target)."""
    top = max(lab.max() for lab in labels)
    lo = min(lab.min() for lab in labels)
    named = {}
    for i, (z, lab) in enumerate(zip(embeddings, labels)):
        keep = lab < top if drop_max else np.ones(len(lab), bool)
        named[f"animal{i}"] = xr.DataArray(z[keep], dims=("sample", "latent"),
                                           coords={"position": ("sample", lab[keep])})
    scores = consistency(named, "position", bins=bins, range=(lo, top)).values
    return scores[~np.eye(len(scores), dtype=bool)]


def _cebra(embeddings: list[np.ndarray], labels: list[np.ndarray], n_bins: int = 100) -> np.ndarray:
    scores, pairs, ids = metrics.consistency_score(
        [z.copy() for z in embeddings], between="datasets", labels=[lab.copy() for lab in labels],
        dataset_ids=[f"animal{i}" for i in range(len(embeddings))], num_discretization_bins=n_bins)
    expected = [(f"animal{i}", f"animal{j}") for i in range(len(embeddings)) for j in range(len(embeddings)) if i != j]
    assert [tuple(p) for p in pairs] == expected
    return np.asarray(scores)


def test_our_bins_99_without_the_maximum_samples_equal_cebras_100_bins():
    embeddings, labels = _animals()
    theirs = _cebra(embeddings, labels)
    assert theirs.shape == (12,) and 0.3 < theirs.min() < theirs.max() < 1.0  # a non-trivial spread to match
    np.testing.assert_allclose(_ours(embeddings, labels, bins=99, drop_max=True), theirs, rtol=0, atol=1e-10)


def test_the_options_that_differ_from_cebra_change_the_numbers():
    """Our 100 bins (and keeping the maximum-label samples) are not CEBRA's 100: close, not equal."""
    embeddings, labels = _animals()
    theirs = _cebra(embeddings, labels)
    ours_100 = _ours(embeddings, labels, bins=100, drop_max=False)
    assert np.abs(ours_100 - theirs).max() > 1e-6
    assert np.abs(ours_100 - theirs).max() < 0.05  # the same measure on a 1 % finer grid
    with_max = _ours(embeddings, labels, bins=99, drop_max=False)
    assert np.abs(with_max - theirs).max() > 1e-9  # the one sample at the maximum moves animal1's last bin


def test_cebra_and_ours_agree_on_a_sparse_track_where_bins_borrow_their_neighbours():
    """Empty bins take the samples within +/-1, then +/-2 bins in both implementations.

    The last bin is kept populated: were it empty, CEBRA would fill it from the maximum-label
    samples too (the one place where dropping them is not enough to reproduce CEBRA).
    """
    embeddings, labels = _animals(seed=1)
    rng = np.random.default_rng(3)
    for i in range(len(labels)):  # thin the track so that many bins are empty
        keep = rng.random(len(labels[i])) < 0.03
        keep[np.argmin(labels[i])] = keep[np.argmax(labels[i])] = True
        keep |= labels[i] > TRACK[1] - 0.01  # the last bin (1.6 m / 99 wide) is not empty
        embeddings[i], labels[i] = embeddings[i][keep], labels[i][keep]
    top = max(lab.max() for lab in labels)
    assert all((lab == top).sum() <= 1 for lab in labels) and min(len(lab) for lab in labels) < 200
    theirs = _cebra(embeddings, labels)
    np.testing.assert_allclose(_ours(embeddings, labels, bins=99, drop_max=True), theirs, rtol=0, atol=1e-10)
