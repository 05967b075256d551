"""Decoding behaviour from embeddings with cross-validation that does not leak neighbouring bins.

Neighbouring time bins are nearly identical, so shuffled K-fold over samples overstates decoding
accuracy. Folds here hold out whole trials (grouped K-fold on a sample coordinate) or contiguous
blocks of time; the fixed-split protocol of the rat analysis (first 80 % trains, last 20 %
tests) is :func:`train_test_decode` (docs/spec.md §13.4).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from marble_widgets.analysis._samples import (
    Samples,
    embedding_of,
    embedding_values,
    has_sample_name,
    sample_array,
    sample_values,
)

K_CANDIDATES = (1, 5, 10, 20, 36, 50)
#: regularisation strengths searched by ``kind="ridge_cv"`` (inner CV on the training part only)
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 4, 8))
_KINDS = ("linear", "knn", "ridge_cv")
_TASKS = ("auto", "regression", "classification")


# --------------------------------------------------------------------------------------------
# targets and folds
# --------------------------------------------------------------------------------------------
def _resolve_target(data: Samples, target: Any, task: str) -> tuple[np.ndarray, str, tuple, dict]:
    """Target values (sample, ...), the task, and the target's extra dims/coords."""
    if task not in _TASKS:
        raise ValueError(f"task must be one of {_TASKS}; got {task!r}.")
    source = sample_array(data, target, "target")
    y = np.asarray(source)
    extra_dims: tuple = ()
    extra_coords: dict = {}
    if isinstance(source, xr.DataArray):
        extra_dims = source.dims[1:]
        extra_coords = {d: source.coords[d].values for d in extra_dims if d in source.coords}
    else:
        extra_dims = tuple(f"target_dim_{i}" for i in range(1, y.ndim))
    if task == "auto":
        task = "classification" if y.dtype.kind in "OUSbiu" else "regression"
    if task == "classification" and y.ndim != 1:
        raise ValueError(f"a categorical target must have one label per sample; got shape {y.shape}.")
    if task == "regression":
        y = y.astype(np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("target contains NaN or inf; drop those samples before decoding.")
    return y, task, extra_dims, extra_coords


def _time_order(data: Samples) -> np.ndarray:
    """Sample indices in recording order: by (trial, time) when present, then sample order."""
    n = data.sizes["sample"]
    keys = [np.arange(n)]
    for name in ("time", "trial"):
        if name in data.coords and data.coords[name].dims == ("sample",):
            keys.append(np.asarray(data.coords[name].values))
    return np.lexsort(keys)  # last key is the primary one: trial, then time, then sample


def _group_kfold(labels: np.ndarray, cv: int, seed: int) -> np.ndarray:
    """Fold of each sample with whole groups held out (GroupKFold, seeded shuffle of groups)."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(labels))
    if n_groups < cv:
        raise ValueError(
            f"cv={cv} folds need at least {cv} groups, but groups has {n_groups}; lower cv or pass "
            "groups=None with contiguous=True."
        )
    try:
        splitter = GroupKFold(n_splits=cv, shuffle=True, random_state=seed)
    except TypeError:  # scikit-learn < 1.6: relabel groups in a seeded random order instead
        uniq = np.unique(labels)
        perm = dict(zip(uniq, np.random.default_rng(seed).permutation(len(uniq))))
        labels = np.array([perm[v] for v in labels])
        splitter = GroupKFold(n_splits=cv)
    fold = np.empty(len(labels), dtype=np.int64)
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), groups=labels)):
        fold[test] = f
    return fold


def _contiguous_folds(order: np.ndarray, labels: np.ndarray | None, cv: int) -> np.ndarray:
    """Contiguous blocks in time order; with group labels, blocks of whole consecutive groups."""
    fold = np.empty(len(order), dtype=np.int64)
    if labels is None:
        if len(order) < cv:
            raise ValueError(f"cv={cv} folds need at least {cv} samples; got {len(order)}.")
        for f, block in enumerate(np.array_split(order, cv)):
            fold[block] = f
        return fold
    seq = list(dict.fromkeys(labels[order].tolist()))
    if len(seq) < cv:
        raise ValueError(
            f"cv={cv} folds need at least {cv} groups, but groups has {len(seq)}; lower cv or pass "
            "groups=None to cut contiguous blocks of samples."
        )
    which = {g: f for f, chunk in enumerate(np.array_split(np.arange(len(seq)), cv)) for g in
             (seq[i] for i in chunk)}
    return np.array([which[v] for v in labels.tolist()], dtype=np.int64)


def fold_assignment(
    embedding: Samples,
    cv: int = 5,
    groups: Any = "trial",
    contiguous: bool = False,
    seed: int = 0,
) -> xr.DataArray:
    """Test fold of every sample under the chosen cross-validation scheme.

    Exposed so that the split can be inspected and reused. ``groups`` (a per-sample name or
    array, e.g. ``"trial"``): whole groups are held out (GroupKFold, groups shuffled with
    ``seed``). ``contiguous``: folds are contiguous blocks of recording order (by trial, then
    time) — of whole groups when ``groups`` is given, else KFold without shuffle. Neither:
    shuffled KFold over samples (leaks neighbouring bins; only for independent samples).

    Returns
    -------
    xr.DataArray (sample,) of ints 0..cv-1 named ``test_fold``, with the sample coords.
    """
    from sklearn.model_selection import KFold

    emb = embedding_of(embedding)
    if not isinstance(cv, (int, np.integer)) or cv < 2:
        raise ValueError(f"cv must be an integer >= 2; got {cv!r}.")
    n = emb.sizes["sample"]
    labels = None if groups is None else sample_values(embedding, groups, "groups")
    if contiguous:
        fold = _contiguous_folds(_time_order(emb), labels, int(cv))
    elif labels is not None:
        fold = _group_kfold(labels, int(cv), seed)
    else:
        if n < cv:
            raise ValueError(f"cv={cv} folds need at least {cv} samples; got {n}.")
        fold = np.empty(n, dtype=np.int64)
        for f, (_, test) in enumerate(KFold(int(cv), shuffle=True, random_state=seed).split(np.zeros(n))):
            fold[test] = f
    coords = {k: c for k, c in emb.coords.items() if c.dims == ("sample",)}
    return xr.DataArray(fold, dims=("sample",), coords=coords, name="test_fold")


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def _make_model(kind: str, task: str, k: int | None, metric: str, alpha: float, seed: int,
                inner_splits: list | None = None):
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "ridge_cv":
        if task == "regression":
            return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS, cv=inner_splits))
        return make_pipeline(StandardScaler(), LogisticRegressionCV(
            Cs=[1.0 / a for a in RIDGE_ALPHAS], cv=inner_splits, max_iter=5000, random_state=seed))
    if kind == "linear":
        if task == "regression":
            return Ridge(alpha=alpha)
        return LogisticRegression(max_iter=2000, random_state=seed)
    cls = KNeighborsRegressor if task == "regression" else KNeighborsClassifier
    return cls(n_neighbors=k, metric=metric)


def _inner_splits(n: int, groups: np.ndarray | None, cv: int = 5) -> list:
    """Inner CV folds of the training rows: whole groups (GroupKFold), else contiguous blocks."""
    from sklearn.model_selection import GroupKFold, KFold

    if groups is not None and len(np.unique(groups)) >= 2:
        return list(GroupKFold(min(cv, len(np.unique(groups)))).split(np.zeros(n), groups=groups))
    if n < 2:
        raise ValueError(f"kind='ridge_cv' needs at least 2 training samples; got {n}.")
    return list(KFold(min(cv, n), shuffle=False).split(np.zeros(n)))


def _score(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    if task == "classification":
        return float(accuracy_score(y_true, y_pred))
    return float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan")


#: regression criteria of :func:`choose_k`: a metric of :func:`_metrics` and its sign (higher is better)
CRITERIA = {"r2": 1.0, "median_abs_error": -1.0}


def choose_k(
    x: np.ndarray | Samples,
    y: np.ndarray | str,
    task: str = "regression",
    *,
    metric: str = "cosine",
    candidates: tuple[int, ...] = K_CANDIDATES,
    inner_cv: int = 5,
    criterion: str = "r2",
) -> int:
    """Pick the number of neighbours by unshuffled (contiguous) K-fold CV on training data.

    Rows of ``x`` (n, latent) / ``y`` (n, ...) must be in recording order, so each inner fold is
    a contiguous block; an embedding or results Dataset as ``x`` (with ``y`` a per-sample name or
    array) is put in recording order (trial, then time) here. Score: accuracy (classification);
    for regression ``criterion="r2"`` or ``"median_abs_error"`` (choose k by the figure you will
    report). Ties go to the smaller k.
    """
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV, KFold

    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {sorted(CRITERIA)}; got {criterion!r}.")
    if isinstance(x, (xr.DataArray, xr.Dataset)):
        order = _time_order(x)
        x, y = embedding_values(x, "x")[order], sample_values(x, y, "y")[order]
    n = len(x)
    inner_cv = int(min(inner_cv, n))
    if inner_cv < 2:
        raise ValueError(f"choosing k needs at least 2 training samples; got {n}.")
    splits = list(KFold(inner_cv, shuffle=False).split(x))
    max_k = min(len(tr) for tr, _ in splits)
    usable = [c for c in candidates if c <= max_k] or [max(1, max_k)]
    metric_name = "accuracy" if task == "classification" else criterion
    scorer = make_scorer(lambda yt, yp: _metrics(task, yt, yp)[metric_name],
                         greater_is_better=task == "classification" or CRITERIA[criterion] > 0)
    search = GridSearchCV(_make_model("knn", task, usable[0], metric, 0.0, 0), {"n_neighbors": usable},
                          scoring=scorer, cv=splits, refit=False, error_score=np.nan).fit(x, y)
    folds = np.array([search.cv_results_[f"split{i}_test_score"] for i in range(len(splits))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a candidate whose every fold failed
        mean = np.nanmean(folds, axis=0)
    mean = np.where(np.isnan(mean), -np.inf, mean)
    return int(usable[int(np.argmax(mean))])  # argmax: ties go to the smaller k


def _fit_predict(x_tr, y_tr, x_te, kind: str, task: str, k: int | None, metric: str, alpha: float,
                 seed: int, k_criterion: str = "r2", groups_tr: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Fit on the training rows (in recording order) and predict the test rows; returns k used."""
    if kind == "knn":
        k = choose_k(x_tr, y_tr, task, metric=metric, criterion=k_criterion) if k is None else int(k)
        if k > len(x_tr):
            raise ValueError(f"k={k} neighbours but only {len(x_tr)} training samples; lower k.")
    splits = _inner_splits(len(x_tr), groups_tr) if kind == "ridge_cv" else None
    model = _make_model(kind, task, k, metric, alpha, seed, splits).fit(x_tr, y_tr)
    return np.asarray(model.predict(x_te)), (int(k) if kind == "knn" else -1)


def _group_labels(data: Samples, groups: Any) -> np.ndarray | None:
    """Per-sample group labels (a per-sample name or an array); None (contiguous) if the name is absent."""
    if groups is None or (isinstance(groups, str) and not has_sample_name(data, groups)):
        return None
    return sample_values(data, groups, "groups")


def _metrics(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, or R^2 (averaged over outputs) and median absolute (Euclidean) error."""
    if task == "classification":
        return {"accuracy": _score(task, y_true, y_pred)}
    err = np.abs(y_true - y_pred) if y_true.ndim == 1 else np.linalg.norm(
        (y_true - y_pred).reshape(len(y_true), -1), axis=1)
    return {"r2": _score(task, y_true, y_pred),
            "median_abs_error": float(np.median(err)) if len(err) else float("nan")}


# --------------------------------------------------------------------------------------------
# public decoders
# --------------------------------------------------------------------------------------------
def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}; got {kind!r}.")


def _assemble(per_fold: list[dict[str, float]], ks: list[int], pred: np.ndarray, y: np.ndarray,
              emb: xr.DataArray, task: str, extra: tuple[tuple, dict], attrs: dict) -> xr.Dataset:
    """Scores per fold + pooled scores + predictions on sample, as one Dataset."""
    extra_dims, extra_coords = extra
    coords = {k: c for k, c in emb.coords.items() if c.dims == ("sample",)}
    coords.update(extra_coords)
    ds = xr.Dataset(coords=coords)
    ds = ds.assign_coords(fold=np.arange(len(per_fold)))
    for name in per_fold[0]:
        ds[name] = ("fold", np.array([m[name] for m in per_fold]))
        ds[name].attrs["description"] = f"{name} of each test fold"
    ds["k"] = ("fold", np.array(ks, dtype=np.int64))
    for name, value in _metrics(task, y, pred).items():
        ds[f"{name}_pooled"] = value
    ds["prediction"] = (("sample",) + tuple(extra_dims), pred)
    ds.attrs = {**attrs, "task": task}
    return ds


def decode(
    embedding: Samples,
    target: Any,
    *,
    kind: str = "linear",
    cv: int = 5,
    groups: Any = "trial",
    contiguous: bool = False,
    k: int | None = None,
    metric: str = "cosine",
    alpha: float = 1e-6,
    task: str = "auto",
    seed: int = 0,
) -> xr.Dataset:
    """Cross-validated decoding of a behavioural variable from an embedding.

    Measures how much of the behaviour an embedding carries, without the optimism of shuffled
    folds over neighbouring time bins (see :func:`fold_assignment` for ``cv``, ``groups``,
    ``contiguous``, ``seed``). ``kind="linear"``: Ridge (``alpha``) for continuous targets,
    logistic regression for labels; ``"ridge_cv"``: the same on standardised inputs with the
    strength chosen from :data:`RIDGE_ALPHAS` by inner CV over the training fold's groups (the
    decoder behind the README's macaque velocity R^2); ``"knn"``: k-nearest neighbours with
    ``metric``, and ``k=None`` chooses k per training fold by unshuffled inner CV from
    ``K_CANDIDATES``.

    Parameters
    ----------
    embedding : xr.DataArray (sample, latent), or a Dataset holding ``embedding`` and the
        behaviour (e.g. ``MARBLE.results(flow_field)``).
    target : name of a per-sample coordinate/variable of ``embedding`` (e.g. ``"hand_velocity"``,
        (sample, axis)) or a DataArray/array on sample (sample,) or (sample, axis). Float ->
        regression; str/bool/int -> classification (override with ``task``).

    Returns
    -------
    xr.Dataset with, on ``fold``: ``r2`` and ``median_abs_error`` (Euclidean norm of the error
    for multi-output targets) or ``accuracy``, and ``k`` (-1 for linear); pooled scalars
    ``r2_pooled``/``median_abs_error_pooled`` or ``accuracy_pooled``; on ``sample``:
    ``prediction`` (each sample predicted by the model that did not see it) and ``test_fold``.
    """
    _check_kind(kind)
    emb = embedding_of(embedding)
    x = embedding_values(emb)
    y, task, *extra = _resolve_target(embedding, target, task)
    fold = fold_assignment(embedding, cv, groups, contiguous, seed).values
    labels = None if contiguous else _group_labels(embedding, groups)
    order = _time_order(emb)
    pred = np.empty(y.shape, dtype=y.dtype if task == "classification" else np.float64)
    per_fold, ks = [], []
    for f in range(int(cv)):
        train = order[fold[order] != f]  # training rows kept in recording order
        test = np.flatnonzero(fold == f)
        pred[test], k_used = _fit_predict(x[train], y[train], x[test], kind, task, k, metric, alpha, seed,
                                          groups_tr=None if labels is None else labels[train])
        per_fold.append(_metrics(task, y[test], pred[test]))
        ks.append(k_used)
    attrs = {"kind": kind, "cv": int(cv), "groups": str(groups), "contiguous": int(contiguous),
             "metric": metric if kind == "knn" else "", "alpha": alpha, "seed": seed}
    ds = _assemble(per_fold, ks, pred, y, emb, task, tuple(extra), attrs)
    ds["test_fold"] = ("sample", fold)
    return ds


def _split_fixed(emb: Samples, y: np.ndarray, train_fraction: float):
    """First ``train_fraction`` of recording order trains, the rest tests."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction!r}.")
    order = _time_order(emb)
    cut = int(round(train_fraction * len(order)))
    if cut < 1 or cut >= len(order):
        raise ValueError(f"train_fraction={train_fraction} leaves an empty train or test set.")
    tr, te = order[:cut], np.sort(order[cut:])
    return emb.isel(sample=tr), y[tr], emb.isel(sample=te), y[te]


def train_test_decode(
    train_emb: Samples,
    train_target: Any,
    test_emb: Samples | None = None,
    test_target: Any = None,
    *,
    kind: str = "knn",
    k: int | None = None,
    metric: str = "cosine",
    alpha: float = 1e-6,
    task: str = "auto",
    train_fraction: float = 0.8,
    seed: int = 0,
    k_criterion: str = "r2",
    groups: Any = "trial",
) -> xr.Dataset:
    """Decode with one fixed split: fit on the training embedding, score on the test embedding.

    The rat protocol (docs/spec.md §13.4: k-NN, ``k=36``, cosine metric, trained on the first 80 % and
    tested on the last 20 % of the session). Without ``test_emb`` the split is made here from
    ``train_emb`` in recording order (``train_fraction``). Embeddings may be results Datasets;
    targets are names of per-sample coordinates/variables or arrays on sample; a name given only
    as ``train_target`` is used for both.
    Without ``k``, k is chosen on the training part by :func:`choose_k` with ``k_criterion``.
    ``kind="ridge_cv"`` chooses its strength by inner CV over the training part's ``groups``
    (whole trials by default; contiguous blocks when the coordinate is absent).

    Returns
    -------
    The Dataset of :func:`decode` with one fold; ``prediction`` is on the test samples.
    """
    _check_kind(kind)
    tr_emb = train_emb
    y_tr, task_tr, *extra = _resolve_target(tr_emb, train_target, task)
    if test_emb is None:
        tr_emb, y_tr, te_emb, y_te = _split_fixed(tr_emb, y_tr, train_fraction)
    else:
        te_emb = test_emb
        if test_target is None:
            if not isinstance(train_target, str):
                raise ValueError("test_target is required when train_target is not a coordinate name.")
            test_target = train_target
        y_te, _, *extra = _resolve_target(te_emb, test_target, task_tr)
    x_tr, x_te = embedding_values(tr_emb, "train_emb"), embedding_values(te_emb, "test_emb")
    if x_tr.shape[1] != x_te.shape[1]:
        raise ValueError(f"train_emb has {x_tr.shape[1]} latent dims but test_emb {x_te.shape[1]}.")
    order = _time_order(tr_emb)
    labels = _group_labels(tr_emb, groups)
    pred, k_used = _fit_predict(x_tr[order], y_tr[order], x_te, kind, task_tr, k, metric, alpha, seed, k_criterion,
                                groups_tr=None if labels is None else labels[order])
    attrs = {"kind": kind, "protocol": "fixed split", "metric": metric if kind == "knn" else "",
             "alpha": alpha, "seed": seed, "n_train": len(x_tr), "n_test": len(x_te)}
    return _assemble([_metrics(task_tr, y_te, pred)], [k_used], pred, y_te, embedding_of(te_emb), task_tr,
                     tuple(extra), attrs)


#: how :func:`cross_decode` brings the test animal into the training animal's latent frame
_ALIGNMENTS = ("procrustes", "ot", "none")


def cross_decode(
    train_emb: Samples,
    test_emb: Samples,
    target: str = "position",
    *,
    align: str = "procrustes",
    bins: int = 100,
    kind: str = "knn",
    k: int | None = None,
    metric: str = "cosine",
    k_criterion: str = "median_abs_error",
    seed: int = 0,
) -> xr.Dataset:
    """Across-animal decoding: a decoder fitted on one animal's embedding, scored on another's.

    ``test_emb`` is first mapped into ``train_emb``'s frame: ``"procrustes"`` matches the two
    animals' mean embeddings in ``bins`` bins of ``target`` (CEBRA's consistency alignment; it
    sees the test animal's labels only through those bin means), ``"ot"`` aligns the clouds
    without labels (:func:`~marble_widgets.analysis.ot_align`), ``"none"`` assumes a shared
    space (one joint model). ``target`` must name a per-sample variable of both embeddings, on the
    same scale in both animals (e.g. track position normalised to 0..1). Either may be a results
    Dataset; a 2-D target (e.g. ``"hand_velocity"``) needs ``align="ot"`` or ``"none"``.

    Returns
    -------
    The Dataset of :func:`train_test_decode` (one fold, predictions on the test animal's
    samples), with ``attrs["align"]``.
    """
    from marble_widgets.analysis.alignment import ot_align, procrustes_align

    if align not in _ALIGNMENTS:
        raise ValueError(f"align must be one of {_ALIGNMENTS}; got {align!r}.")
    tr, te = train_emb, test_emb
    for name, data in (("train_emb", tr), ("test_emb", te)):
        embedding_of(data, name)
        if not has_sample_name(data, target):
            what = "sample coordinate" if isinstance(data, xr.DataArray) else "per-sample variable"
            raise ValueError(f"{name} has no {what} {target!r}; add it (assign_coords / assign) first.")
    if align != "none":
        aligned = (procrustes_align(te, tr, target, bins=bins) if align == "procrustes" else
                   ot_align(te, tr, seed=seed)).aligned
        te = te.assign(embedding=aligned) if isinstance(te, xr.Dataset) else aligned
    result = train_test_decode(tr, target, te, target, kind=kind, k=k, metric=metric, seed=seed,
                               k_criterion=k_criterion)
    result.attrs["align"] = align
    return result
