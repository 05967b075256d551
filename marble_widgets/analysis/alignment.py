"""Cross-animal/session alignment of embeddings and CEBRA-style consistency (docs/spec.md §13.5).

MARBLE has no learned alignment step: separately trained models give embeddings that agree up
to an isometry at best. These tools estimate that isometry (orthogonal Procrustes on matched
label-binned means, or on an optimal-transport coupling when there are no labels) and score
how linearly related two embeddings are (consistency = R^2 of a linear map between binned means).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from marble_widgets.analysis._samples import (
    Samples,
    embedding_of,
    embedding_values,
    group_indices,
    sample_values,
    subsample,
)

_FILL_WIDTHS = (0, 1, 2)


class Alignment(NamedTuple):
    """Result of an alignment: ``aligned = scale * source @ rotation + translation``."""

    aligned: xr.DataArray
    rotation: xr.DataArray
    scale: float
    translation: xr.DataArray

    def apply(self, embedding: Samples) -> xr.DataArray:
        """Apply the same transform to another embedding (or results Dataset) of the source animal/session."""
        emb = embedding_of(embedding)
        values = embedding_values(emb)
        out = self.scale * values @ self.rotation.values + self.translation.values
        return emb.copy(data=out)


# --------------------------------------------------------------------------------------------
# binned means
# --------------------------------------------------------------------------------------------
def _label_values(data: Samples, label: Any) -> np.ndarray:
    values = sample_values(data, label, "label")
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        raise ValueError(
            f"label must be one numeric value per sample (e.g. normalised track position); got dtype "
            f"{values.dtype} and shape {values.shape}. Use `by=` for categorical variables such as direction."
        )
    return values.astype(np.float64)


def _bin_index(values: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """Equal-width bin of each value in [lo, hi]; -1 outside the range or NaN."""
    width = (hi - lo) if hi > lo else 1.0
    with np.errstate(invalid="ignore"):
        idx = np.floor((values - lo) / width * bins)
        idx = np.where(values == hi, bins - 1, idx)
        inside = (values >= lo) & (values <= hi)
    return np.where(inside, idx, -1).astype(np.int64)


def _fill_means(x: np.ndarray, idx: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean per bin; an empty bin uses the samples of bins within +/-1, then +/-2 of it."""
    keep = idx >= 0
    counts = np.bincount(idx[keep], minlength=bins).astype(np.float64)
    sums = np.zeros((bins, x.shape[1]))
    np.add.at(sums, idx[keep], x[keep])
    means = np.full((bins, x.shape[1]), np.nan)
    width = np.full(bins, -1, dtype=np.int64)
    for w in _FILL_WIDTHS:
        kernel = np.ones(2 * w + 1)
        n_win = np.convolve(counts, kernel)[w:w + bins]
        s_win = np.stack([np.convolve(sums[:, k], kernel)[w:w + bins] for k in range(x.shape[1])], axis=1)
        take = (width < 0) & (n_win > 0)
        means[take] = s_win[take] / n_win[take, None]
        width[take] = w
    return means, counts.astype(np.int64), width


def _check_bins(bins: int) -> None:
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer; got {bins!r}.")


def _label_range(values: list[np.ndarray], range: tuple[float, float] | None) -> tuple[float, float]:
    if range is not None:
        lo, hi = (float(v) for v in range)
        if not hi > lo:
            raise ValueError(f"range must be (low, high) with high > low; got {range!r}.")
        return lo, hi
    allv = np.concatenate(values)
    if not np.isfinite(allv).any():
        raise ValueError("label has no finite values; cannot bin it.")
    return float(np.nanmin(allv)), float(np.nanmax(allv))


def binned_means(
    embedding: Samples,
    label: Any = "position",
    bins: int = 100,
    range: tuple[float, float] | None = None,
    *,
    by: Any = None,
    normalize: bool = True,
) -> xr.DataArray:
    """Mean embedding vector per equal-width bin of a behavioural label (CEBRA's consistency input).

    Summarises an embedding by where it sits for each value of e.g. track position, so that
    animals with different sample counts can be compared bin by bin. Empty bins borrow the
    samples of bins within +/-1, then +/-2 (``fill_width`` coord: 0, 1, 2; -1 = still empty -> NaN).
    With ``normalize`` each bin mean is scaled to unit norm. A value v goes to bin
    ``floor((v - low) / (high - low) * bins)`` (``high`` itself to the last bin); pandas' ``cut``
    (xarray ``groupby_bins``) and scipy's ``binned_statistic`` compare against ``linspace`` edges
    instead and put labels on a grid (0.3, 0.6, 0.7 of 10 bins on [0, 1]) one bin lower, so the
    per-bin sums are ``np.add.at`` on that index.

    Parameters
    ----------
    embedding : embedding DataArray (sample, latent) or a Dataset holding ``embedding`` and ``label``.
    label : name of a per-sample coordinate/variable, or an array (sample,) of numbers.
    range : (low, high) of the bins; default the label's min and max.
    by : optional per-sample name/array (e.g. running direction): separate bins per value.

    Returns
    -------
    xr.DataArray (bin, latent), or (by, bin, latent) when ``by`` is given; ``bin`` coord = bin
    centres; ``count`` (samples in the bin) and ``fill_width`` coords.
    """
    _check_bins(bins)
    emb = embedding_of(embedding)
    x = embedding_values(emb)
    values = _label_values(embedding, label)
    lo, hi = _label_range([values], range)
    idx = _bin_index(values, int(bins), lo, hi)
    groups, index = group_indices(sample_values(embedding, by, "by")) if by is not None else ([None], [None])
    means, counts, widths = [], [], []
    for sel in index:
        sel = np.arange(len(x)) if sel is None else sel
        m, c, w = _fill_means(x[sel], idx[sel], int(bins))
        means.append(m), counts.append(c), widths.append(w)
    means_arr = np.stack(means)
    if normalize:
        norm = np.linalg.norm(means_arr, axis=-1, keepdims=True)
        means_arr = means_arr / np.where(norm > 0, norm, 1.0)
    edges = np.linspace(lo, hi, int(bins) + 1)
    latent = emb.coords["latent"].values if "latent" in emb.coords else np.arange(x.shape[1])
    out = xr.DataArray(
        means_arr, dims=("group", "bin", "latent"), name="binned_means",
        coords={"bin": (edges[:-1] + edges[1:]) / 2, "latent": latent,
                "count": (("group", "bin"), np.stack(counts)),
                "fill_width": (("group", "bin"), np.stack(widths))},
        attrs={"range_low": lo, "range_high": hi, "normalize": int(normalize)},
    )
    if by is None:
        return out.isel(group=0, drop=True)
    name = by if isinstance(by, str) else "group"
    return out.rename(group=name).assign_coords({name: np.asarray(groups)})


def _matched_rows(a: xr.DataArray, b: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (group x bin, latent) of two binned-means arrays, matched by group label and bin.

    Groups (``by`` values) present in only one of them are dropped, so animals whose groups
    appear in a different order or are missing still compare like with like.
    """
    if a.ndim == 3:
        dim = a.dims[0]
        common = [g for g in a[dim].values if g in set(b[dim].values)]
        if not common:
            raise ValueError(f"the two embeddings share no {dim!r} value; cannot match their bins.")
        a, b = a.sel({dim: common}), b.sel({dim: common})
    return a.values.reshape(-1, a.shape[-1]), b.values.reshape(-1, b.shape[-1])


# --------------------------------------------------------------------------------------------
# Procrustes
# --------------------------------------------------------------------------------------------
def procrustes_rotation(x: np.ndarray, y: np.ndarray, scale: bool = False, reflection: bool = True
                        ) -> tuple[np.ndarray, float]:
    """Orthogonal R (and scale) minimising ||s (x - mean x) R - (y - mean y)|| for matched rows (no NaN)."""
    from scipy.linalg import orthogonal_procrustes

    a, b = x - x.mean(axis=0), y - y.mean(axis=0)
    rot, sv_sum = orthogonal_procrustes(a, b)
    if not reflection and np.linalg.det(rot) < 0:
        u, sv, vt = np.linalg.svd(a.T @ b)
        d = np.ones(len(sv))
        d[-1] = -1.0
        rot, sv_sum = (u * d) @ vt, float(np.sum(sv * d))
    s = float(sv_sum / np.sum(a * a)) if scale and np.sum(a * a) > 0 else 1.0
    return rot, s


def _result(source: xr.DataArray, x: np.ndarray, rot: np.ndarray, s: float, t: np.ndarray,
            method: str) -> Alignment:
    d = rot.shape[0]
    rotation = xr.DataArray(rot, dims=("latent", "latent_target"), name="rotation",
                            coords={"latent": np.arange(d), "latent_target": np.arange(d)})
    translation = xr.DataArray(t, dims=("latent",), coords={"latent": np.arange(d)}, name="translation")
    aligned = source.copy(data=s * x @ rot + t)
    aligned.attrs = {**source.attrs, "alignment": method}
    return Alignment(aligned, rotation, s, translation)


def _pair(source: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated embedding values of source and target, with the same latent dimension."""
    x, y = embedding_values(source, "source"), embedding_values(target, "target")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"source has {x.shape[1]} latent dims but target has {y.shape[1]}; alignment needs the same "
            "latent dimension (reduce both with pca() first)."
        )
    return x, y


def procrustes_align(
    source: Samples,
    target: Samples,
    label: Any = None,
    *,
    bins: int = 100,
    range: tuple[float, float] | None = None,
    by: Any = None,
    scale: bool = False,
    reflection: bool = True,
) -> Alignment:
    """Align ``source`` to ``target`` by orthogonal Procrustes on matched points.

    Brings two animals'/sessions' embeddings into one frame for joint plots and comparison.
    With ``label`` (e.g. ``"position"``) the matched points are the (un-normalised) binned means
    of both embeddings on a common range (bins empty in either are skipped); with ``label=None``
    the samples themselves are paired row by row (same number of samples). The fitted transform
    ``scale * x @ R + translation`` is then applied to every source sample.
    ``source``/``target`` are embeddings or results Datasets (``label``/``by`` name their variables).

    Returns
    -------
    Alignment(aligned, rotation, scale, translation): ``aligned`` has the source's coords;
    ``rotation`` (latent, latent_target) is orthogonal (det +1 unless ``reflection``).
    """
    x, y = _pair(source, target)
    if label is None:
        if len(x) != len(y):
            raise ValueError(
                f"label=None pairs samples row by row, but source has {len(x)} samples and target "
                f"{len(y)}; pass label= (e.g. 'position') to match binned means instead."
            )
        a, b = x, y
    else:
        lo_hi = _label_range([_label_values(source, label), _label_values(target, label)], range)
        a, b = _matched_rows(binned_means(source, label, bins, lo_hi, by=by, normalize=False),
                             binned_means(target, label, bins, lo_hi, by=by, normalize=False))
        ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
        a, b = a[ok], b[ok]
    if len(a) < 2:
        raise ValueError("fewer than 2 matched points; use more samples or fewer bins.")
    rot, s = procrustes_rotation(a, b, scale, reflection)
    t = b.mean(axis=0) - s * a.mean(axis=0) @ rot
    return _result(embedding_of(source), x, rot, s, t, "procrustes")


# --------------------------------------------------------------------------------------------
# label-free alignment: optimal transport + Procrustes
# --------------------------------------------------------------------------------------------
def _ot_refine(a: np.ndarray, b: np.ndarray, rot: np.ndarray, s: float, n_iter: int, scale: bool,
               reflection: bool) -> tuple[np.ndarray, float, float]:
    """Alternate exact OT coupling (squared Euclidean cost) and Procrustes on its barycentric map."""
    import ot

    wa, wb = np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b))
    cost_val = np.inf
    for _ in range(max(1, n_iter)):
        cost = ot.dist(s * a @ rot, b, metric="sqeuclidean")
        plan = ot.emd(wa, wb, cost, numItermax=max(100_000, 50 * cost.size))
        cost_val = float(np.sum(plan * cost))
        matched = (plan @ b) / wa[:, None]
        new_rot, new_s = procrustes_rotation(a, matched, scale, reflection)
        done = np.abs(new_rot - rot).max() < 1e-12 and abs(new_s - s) < 1e-12
        rot, s = new_rot, new_s
        if done:
            break
    return rot, s, cost_val


def _initial_rotations(a: np.ndarray, b: np.ndarray, reflection: bool) -> list[np.ndarray]:
    """Candidate starts: principal axes of source mapped to those of target, every sign pattern."""
    d = a.shape[1]
    ua = np.linalg.svd(a, full_matrices=False)[2].T
    ub = np.linalg.svd(b, full_matrices=False)[2].T
    n_patterns = 2**d if d <= 6 else 1
    starts = [np.eye(d)]
    for p in range(n_patterns):
        signs = np.array([-1.0 if (p >> i) & 1 else 1.0 for i in range(d)])
        r = (ua * signs) @ ub.T
        if reflection or np.linalg.det(r) > 0:
            starts.append(r)
    return starts


def ot_align(
    source: Samples,
    target: Samples,
    *,
    seed: int = 0,
    n_iter: int = 30,
    max_points: int = 500,
    scale: bool = False,
    reflection: bool = True,
) -> Alignment:
    """Align two embeddings without labels: optimal transport coupling + Procrustes, iterated.

    For sessions/animals without a shared behavioural label. Both clouds are centred (and, with
    ``scale``, matched in spread); from each start rotation (identity, and the source's principal
    axes mapped onto the target's under every sign pattern for <= 6 latent dims) we alternate
    (1) the exact OT plan between the rotated source and the target (uniform weights, squared
    Euclidean cost, POT ``emd``) and (2) orthogonal Procrustes from each source point to its
    plan-weighted (barycentric) target. Starts are ranked by the OT cost after 3 rounds and the
    best is run to ``n_iter`` rounds. Clouds are subsampled to ``max_points`` (seeded) for OT;
    the transform is applied to every source sample. Works when the cloud has no symmetry.

    Returns
    -------
    Alignment(aligned, rotation, scale, translation); ``aligned.attrs["ot_cost"]`` = final
    mean squared matched distance.
    """
    x, y = _pair(source, target)
    rng = np.random.default_rng(seed)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    a = (x - mx)[subsample(np.arange(len(x)), max_points, rng)]
    b = (y - my)[subsample(np.arange(len(y)), max_points, rng)]
    s0 = float(np.sqrt(np.sum(b**2) / len(b) / max(np.sum(a**2) / len(a), 1e-300))) if scale else 1.0
    ranked = []
    for start in _initial_rotations(a, b, reflection):
        ranked.append(_ot_refine(a, b, start, s0, 3, scale, reflection))
    best = min(ranked, key=lambda r: r[2])
    rot, s, cost = _ot_refine(a, b, best[0], best[1], n_iter, scale, reflection)
    result = _result(embedding_of(source), x, rot, s, my - s * mx @ rot, "ot")
    result.aligned.attrs["ot_cost"] = cost
    return result


# --------------------------------------------------------------------------------------------
# consistency
# --------------------------------------------------------------------------------------------
def _split_animals(embeddings: Any, animal: str) -> dict[str, Samples]:
    """{name: embedding or results Dataset}: the mapping as given, or one input split by ``animal``."""
    if isinstance(embeddings, Mapping) and not isinstance(embeddings, xr.Dataset):
        return {str(k): v for k, v in embeddings.items()}
    names = embeddings.coords if isinstance(embeddings, xr.DataArray) else getattr(embeddings, "variables", {})
    if isinstance(embeddings, (xr.DataArray, xr.Dataset)) and animal in names:
        groups, index = group_indices(sample_values(embeddings, animal, "animal"))
        return {str(g): embeddings.isel(sample=i) for g, i in zip(groups, index)}
    raise TypeError(
        "embeddings must be a dict {name: embedding} or one embedding (or results Dataset) with an "
        f"{animal!r} variable on sample; got {type(embeddings).__name__}."
    )


def _linear_r2(x: np.ndarray, y: np.ndarray) -> float:
    """In-sample R^2 (uniform average over outputs) of a least-squares affine map x -> y."""
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    ok = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    if ok.sum() < 2:
        return float("nan")
    pred = LinearRegression().fit(x[ok], y[ok]).predict(x[ok])
    return float(r2_score(y[ok], pred))


def consistency(
    embeddings: Mapping[str, Samples] | Samples,
    label: Any = "position",
    *,
    bins: int = 100,
    range: tuple[float, float] | None = None,
    by: Any = None,
    animal: str = "animal",
) -> xr.DataArray:
    """Consistency between animals: R^2 of a linear map between their label-binned embeddings.

    CEBRA's consistency score (paper Fig. 5e): each embedding is summarised by unit-norm
    binned means over one common label range (all animals' min..max unless ``range``), and for
    every ordered pair (source, target) a linear regression from source bins to target bins is
    scored by R^2 (1 = identical up to a linear map). Bins empty in either animal are skipped.

    Parameters
    ----------
    embeddings : {name: embedding or results Dataset}, or one of them split by its ``animal`` variable.
    label, by : names of per-sample variables (coords of an embedding, variables of a Dataset).

    Returns
    -------
    xr.DataArray (source, target) named ``consistency``; diagonal NaN.
    """
    _check_bins(bins)
    embs = _split_animals(embeddings, animal)
    if len(embs) < 2:
        raise ValueError(f"consistency needs at least 2 embeddings; got {len(embs)}.")
    lo_hi = _label_range([_label_values(e, label) for e in embs.values()], range)
    binned = {k: binned_means(e, label, bins, lo_hi, by=by, normalize=True) for k, e in embs.items()}
    names = list(embs)
    out = np.full((len(names), len(names)), np.nan)
    for i, src in enumerate(names):
        for j, tgt in enumerate(names):
            if i != j:
                out[i, j] = _linear_r2(*_matched_rows(binned[src], binned[tgt]))
    return xr.DataArray(out, dims=("source", "target"), coords={"source": names, "target": names},
                        name="consistency",
                        attrs={"bins": int(bins), "range_low": lo_hi[0], "range_high": lo_hi[1]})
