"""Low-dimensional views: metric MDS of distance matrices, UMAP or PCA of embeddings (docs/spec.md §13.3).

Plots need two or three coordinates; these functions compute them (plotting never does) and
return labelled xarray objects so the groups/samples stay attached to their coordinates.
"""
from __future__ import annotations

import inspect

import numpy as np
import xarray as xr

from marble_widgets.analysis._samples import Samples, embedding_of, embedding_values

_UMAP_HINT = "UMAP needs the optional extra: pip install marble_widgets[umap]  (or: pip install umap-learn)."


def _check_n_components(n_components: int, upper: int | None = None) -> None:
    if not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer; got {n_components!r}.")
    if upper is not None and n_components > upper:
        raise ValueError(f"n_components={n_components} exceeds the {upper} available; choose at most {upper}.")


def _check_distance_matrix(dist: xr.DataArray) -> np.ndarray:
    """Validate a square, symmetric, non-negative, finite distance matrix and return its values."""
    if not isinstance(dist, xr.DataArray):
        raise TypeError(
            f"dist must be an xarray.DataArray (as returned by distances()); got {type(dist).__name__}."
        )
    values = np.asarray(dist.values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"dist must be a square 2-D matrix; got shape {values.shape}.")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("dist must hold finite, non-negative distances; found NaN, inf or negative values.")
    if not np.allclose(values, values.T, rtol=1e-8, atol=1e-10 * max(values.max(), 1.0)):
        raise ValueError("dist must be symmetric; symmetrise it first, e.g. (d + d.T) / 2.")
    return values


def _mds_estimator(n_components: int, seed: int, n_init: int):
    """Metric MDS on a precomputed matrix, spelled for the installed scikit-learn."""
    from sklearn.manifold import MDS

    params = inspect.signature(MDS).parameters
    kwargs = {"n_components": n_components, "n_init": n_init, "random_state": seed}
    if "metric_mds" in params:  # scikit-learn >= 1.8: metric -> metric_mds, dissimilarity -> metric
        kwargs.update(metric_mds=True, metric="precomputed", init="random")
    else:
        kwargs.update(metric=True, dissimilarity="precomputed")
    if "normalized_stress" in params:
        kwargs["normalized_stress"] = False
    return MDS(**kwargs)


def _classical_mds(values: np.ndarray, n_components: int) -> np.ndarray:
    """Torgerson (classical) MDS: top eigenvectors of the double-centred squared distances.

    Exact for Euclidean distance matrices; used as an extra SMACOF start.
    """
    n = values.shape[0]
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ (values**2) @ j
    evals, evecs = np.linalg.eigh((b + b.T) / 2)
    top = np.argsort(evals)[::-1][:n_components]
    coords = evecs[:, top] * np.sqrt(np.clip(evals[top], 0.0, None))
    if coords.shape[1] < n_components:
        coords = np.pad(coords, ((0, 0), (0, n_components - coords.shape[1])))
    return coords


def _smacof_best(values: np.ndarray, n_components: int, seed: int, n_init: int) -> tuple[np.ndarray, float]:
    """Best (lowest raw stress) of ``n_init`` seeded random SMACOF starts and a classical-MDS start."""
    est = _mds_estimator(n_components, seed, n_init)
    best = (est.fit_transform(values), float(est.stress_))
    est = _mds_estimator(n_components, seed, 1)
    from_classical = (est.fit_transform(values, init=_classical_mds(values, n_components)), float(est.stress_))
    return min(best, from_classical, key=lambda r: r[1])


def mds(dist: xr.DataArray, n_components: int = 2, seed: int = 0, *, n_init: int = 20) -> xr.DataArray:
    """Metric MDS of a distance matrix between groups (e.g. the output of :func:`distances`).

    Places conditions in 2-D/3-D so that their Euclidean distances match the given ones as
    closely as possible: SMACOF, best of ``n_init`` seeded random starts (as in the reference)
    and one start from classical MDS (which avoids the local minima random starts can hit).

    Returns
    -------
    xr.DataArray, dims (group, component) where ``group`` is ``dist``'s first dim name, with its
    coordinate; ``attrs["stress"]`` is the final raw stress.
    """
    values = _check_distance_matrix(dist)
    _check_n_components(n_components)
    group = dist.dims[0]
    n = values.shape[0]
    if n == 1:
        coords, stress = np.zeros((1, n_components)), 0.0
    else:
        coords, stress = _smacof_best(values, int(n_components), seed, n_init)
    out_coords = {"component": np.arange(n_components)}
    if group in dist.coords:
        out_coords[group] = dist.coords[group].values
    return xr.DataArray(
        coords, dims=(group, "component"), coords=out_coords, name="mds",
        attrs={"method": "metric MDS (SMACOF)", "stress": stress, "seed": seed, "n_init": n_init},
    )


def _sample_output(values: np.ndarray, embedding: xr.DataArray, name: str, attrs: dict) -> xr.DataArray:
    """Wrap (sample, component) values with the embedding's sample coordinates."""
    coords = {k: c for k, c in embedding.coords.items() if c.dims and set(c.dims) <= {"sample"}}
    coords["component"] = np.arange(values.shape[1])
    return xr.DataArray(values, dims=("sample", "component"), coords=coords, name=name, attrs=attrs)


def pca(embedding: Samples, n_components: int = 2) -> xr.DataArray:
    """Project an embedding on its first principal components (a fast, deterministic 2-D view).

    The fallback when UMAP is not installed. Components are centred; each axis' sign is fixed so
    that its largest-magnitude loading is positive (deterministic output).

    Returns
    -------
    xr.DataArray (sample, component) with the sample coords; ``attrs["explained_variance_ratio"]``.
    """
    from sklearn.decomposition import PCA

    emb = embedding_of(embedding)
    x = embedding_values(emb)
    _check_n_components(n_components, upper=min(x.shape))
    model = PCA(n_components=n_components, svd_solver="full")  # sign: largest loading positive
    scores = model.fit_transform(x)
    ratio = np.nan_to_num(model.explained_variance_ratio_)
    return _sample_output(scores, emb, "pca",
                          {"method": "pca", "explained_variance_ratio": [float(r) for r in ratio]})


def umap(embedding: Samples, n_components: int = 2, seed: int = 0, *, standardize: bool = True,
         **kwargs) -> xr.DataArray:
    """UMAP view of an embedding (standardised first, ``random_state=seed``), as in the reference.

    Needs the optional ``umap-learn`` package; extra keyword arguments go to ``umap.UMAP``.

    Returns
    -------
    xr.DataArray (sample, component) with the embedding's sample coordinates.
    """
    try:
        import umap as umap_learn
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(_UMAP_HINT) from err
    emb = embedding_of(embedding)
    x = embedding_values(emb)
    _check_n_components(n_components)
    if standardize:
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    reducer = umap_learn.UMAP(n_components=n_components, random_state=seed, **kwargs)
    return _sample_output(np.asarray(reducer.fit_transform(x)), emb, "umap",
                          {"method": "umap", "seed": seed, "standardize": int(standardize)})
