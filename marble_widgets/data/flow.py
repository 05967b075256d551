"""Flow fields from recordings: smoothed rates -> PCA positions -> per-bin differences as vectors.

MARBLE's input (docs/spec.md §2.2): for each trial (or contiguous stretch of a continuous recording) with
state trajectory x(0..T-1), positions are x(0..T-2) and vectors the forward differences
x(t+1) - x(t) per bin (not divided by the bin width). No difference ever spans two trials, a time
gap or a NaN row. The preprocessing (smoothing, optional sqrt/z-score, PCA) is learned on one part
of a recording with :class:`FlowFieldBuilder.fit` and applied unchanged to held-out parts.
"""
from __future__ import annotations

import warnings
from pathlib import PurePath
from typing import Any

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_is_fitted

from marble_widgets.data import preprocess as pp
from marble_widgets.data.containers import SCHEMA_NAMES, combine_flow_fields, flow_field_from_arrays, make_flow_field
from marble_widgets.data.errors import MarbleDataError

__all__ = ["FlowFieldBuilder", "flow_field", "flow_field_from_arrays", "combine_flow_fields"]

_PROVENANCE = ("source", "identifier", "session_id", "subject_id", "align_event")

# A piece is one contiguous run of bins inside one trial: (trial id, trial position or -1, time rows).
_Piece = tuple[int, int, np.ndarray]


def _trial_ids(rec: xr.Dataset) -> np.ndarray:
    """Integer trial ids from the ``trial`` coordinate (positions if the ids are not integers)."""
    ids = rec["trial"].values
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return np.arange(ids.size, dtype=np.int64)


def _pieces(rec: xr.Dataset, rates: np.ndarray, kind: str, bin_size: float) -> list[_Piece]:
    """Split the recording into contiguous runs of finite bins, never crossing a trial border.

    Trial-aligned: runs within each trial. Continuous with a trials table (``start_time``,
    ``stop_time``): runs of bins whose centre lies in [start, stop) of each trial. Continuous
    without trials: runs of the whole recording, numbered 0, 1, ... as their "trial" id.
    """
    times = np.asarray(rec["time"].values, dtype=float)
    if kind == "trials":
        out: list[_Piece] = []
        for i, tid in enumerate(_trial_ids(rec)):
            runs = pp.contiguous_runs(np.isfinite(rates[i]).all(axis=1), times, bin_size)
            out += [(int(tid), i, np.arange(r.start, r.stop)) for r in runs] or [(int(tid), i, np.arange(0))]
        return out
    runs = pp.contiguous_runs(np.isfinite(rates).all(axis=1), times, bin_size)
    if not _has_trials(rec, kind):
        return [(k, -1, np.arange(r.start, r.stop)) for k, r in enumerate(runs)]
    out = []
    starts, stops = rec["start_time"].values.astype(float), rec["stop_time"].values.astype(float)
    for i, tid in enumerate(_trial_ids(rec)):
        inside = (times >= starts[i]) & (times < stops[i])
        found = [np.arange(r.start, r.stop)[inside[r]] for r in runs]
        out += [(int(tid), i, rows) for rows in found if rows.size] or [(int(tid), i, np.arange(0))]
    return out


def _take(values: np.ndarray, dims: tuple[str, ...], trial_pos: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Values at each sample's (trial, time) from an array whose leading dims are trial and/or time."""
    if dims[:2] == ("trial", "time"):
        return values[trial_pos, row]
    if dims[0] == "time":
        return values[row]
    return values[trial_pos]


def _ordered(da: xr.DataArray) -> xr.DataArray:
    """Put ``trial`` then ``time`` first so that :func:`_take` can index the leading axes."""
    lead = [d for d in ("trial", "time") if d in da.dims]
    return da.transpose(*lead, ...)


def _usable(rec: xr.Dataset, name: str, has_trial: bool) -> bool:
    """Whether a variable can be read per sample: on time and/or trial, never neural (a unit* dim)."""
    dims = rec[name].dims
    if any(str(d).startswith("unit") for d in dims) or not ({"time", "trial"} & set(dims)):
        return False
    return "trial" not in dims or has_trial


def _sample_vars(rec: xr.Dataset, skip: set[str], trial_pos: np.ndarray, row: np.ndarray) -> dict[str, xr.DataArray]:
    """Behaviour (on time) and per-trial variables, read at every sample's bin/trial."""
    has_trial = bool((trial_pos >= 0).all())
    out = {}
    for name in rec.data_vars:
        if name in skip or name in SCHEMA_NAMES or not _usable(rec, str(name), has_trial):
            continue
        da = _ordered(rec[name])
        rest = [d for d in da.dims if d not in ("trial", "time")]
        coords = {d: da[d].values for d in rest if d in da.coords}
        out[str(name)] = xr.DataArray(_take(da.values, da.dims, trial_pos, row), dims=("sample", *rest), coords=coords)
    return out


def _has_trials(rec: xr.Dataset, kind: str) -> bool:
    """Whether samples will know their trial: aligned data, or a continuous trials table."""
    return kind == "trials" or ("trial" in rec.dims and "start_time" in rec and "stop_time" in rec)


def _check_condition(rec: xr.Dataset, condition: str | None, has_trial: bool) -> None:
    """Raise unless ``condition`` is None or a 1-value-per-trial/bin variable of ``rec``."""
    if condition is None:
        return

    def fits(name: Any) -> bool:
        return _usable(rec, str(name), has_trial) and not set(rec[name].dims) - {"trial", "time"}

    if condition not in rec.data_vars or not fits(condition):
        options = [str(n) for n in rec.data_vars if fits(n)]
        raise MarbleDataError(
            f"condition={condition!r} is not a per-trial or per-time variable of the recording; "
            f"choose one of {options} or None."
        )


def _condition_labels(rec: xr.Dataset, condition: str | None, trial_pos: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Per-sample condition labels from a per-trial or per-time variable, or one label for all."""
    if condition is None:
        source = rec.attrs.get("source")
        label = PurePath(str(source)).stem if source else "all"
        return np.full(row.size, label or "all")
    da = _ordered(rec[condition])
    return np.asarray(_take(da.values, da.dims, trial_pos, row)).astype(str)


def _differences(X: np.ndarray, difference: str) -> tuple[np.ndarray, np.ndarray, slice]:
    """Positions, vectors and the rows they sit on, for one contiguous piece of states X (T, d)."""
    if difference == "forward":
        return X[:-1], X[1:] - X[:-1], slice(0, len(X) - 1)
    return X[1:-1], (X[2:] - X[:-2]) / 2.0, slice(1, len(X) - 1)


class FlowFieldBuilder(TransformerMixin, BaseEstimator):
    """Recording -> flow field, with smoothing/z-score/PCA learned on one part and reused on others.

    Parameters
    ----------
    n_components : int or None
        PCA components (fitted on all bins of all trials of the fit part); None keeps rates.
    smooth : float or None
        Gaussian kernel width in seconds (0/None: no smoothing).
    sqrt, zscore : bool
        Square-root counts before smoothing; z-score each unit (stats from the fit part) after.
    variable : str
        The neural variable: counts per bin, or rates already in Hz (``attrs['units'] == 'Hz'``).
    condition : str or None
        A per-trial or per-time variable labelling the conditions; None: one condition.
    difference : {"forward", "central"}
        ``x[t+1] - x[t]`` (drops each piece's last bin) or ``(x[t+1] - x[t-1]) / 2`` (drops both ends).
    seed : int
        Random state of the PCA solver.

    Learned attributes: ``pca_`` (sklearn PCA or None), ``explained_variance_ratio_``, ``mean_`` and
    ``scale_`` (if zscore), ``unit_ids_``, ``bin_size_``.
    """

    def __init__(
        self,
        n_components: int | None = 10,
        smooth: float | None = 0.05,
        *,
        sqrt: bool = False,
        zscore: bool = False,
        variable: str = "spike_counts",
        condition: str | None = None,
        difference: str = "forward",
        seed: int = 0,
    ) -> None:
        self.n_components = n_components
        self.smooth = smooth
        self.sqrt = sqrt
        self.zscore = zscore
        self.variable = variable
        self.condition = condition
        self.difference = difference
        self.seed = seed

    # --------------------------------------------------------------------------- steps
    def _check_params(self) -> None:
        if self.difference not in ("forward", "central"):
            raise ValueError(f"difference must be 'forward' or 'central'; got {self.difference!r}.")
        n = self.n_components
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise ValueError(f"n_components must be a positive int or None (no PCA); got {n!r}.")
        pp.check_sigma(self.smooth)

    def _prepare(self, rec: xr.Dataset) -> tuple[np.ndarray, list[_Piece], str, float]:
        """Rates array ((time, unit) or (trial, time, unit)), the pieces, the layout and bin size."""
        if not isinstance(rec, xr.Dataset):
            raise TypeError(f"rec must be a recording xarray.Dataset; got {type(rec).__name__}.")
        self._check_params()
        kind = pp.layout(rec, self.variable)
        _check_condition(rec, self.condition, _has_trials(rec, kind))
        bin_size = pp.bin_size_of(rec)
        order = ("trial", "time", "unit") if kind == "trials" else ("time", "unit")
        da = rec[self.variable].transpose(*order)
        rates = pp.rate_values(da, pp.check_sigma(self.smooth), bin_size, sqrt=self.sqrt).values
        return rates, _pieces(rec, rates, kind, bin_size), kind, bin_size

    @staticmethod
    def _stack(rates: np.ndarray, pieces: list[_Piece]) -> np.ndarray:
        """All pieces' rows stacked into one (n_rows, unit) matrix."""
        rows = [rates[pos, r] if pos >= 0 and rates.ndim == 3 else rates[r] for _, pos, r in pieces]
        return np.concatenate(rows) if rows else np.empty((0, rates.shape[-1]))

    def _fit_prepared(self, rec: xr.Dataset, rates: np.ndarray, pieces: list[_Piece], bin_size: float) -> None:
        Z = self._stack(rates, pieces)
        n_rows, n_units = Z.shape
        if n_rows == 0:
            raise MarbleDataError("no finite bins inside any trial/segment of the recording to fit on.")
        self.unit_ids_ = np.asarray(rec["unit"].values) if "unit" in rec.coords else np.arange(n_units)
        self.bin_size_ = bin_size
        if self.zscore:
            self.mean_, self.scale_ = pp.zscore_stats(Z)
            Z = (Z - self.mean_) / self.scale_
        self.pca_, self.explained_variance_ratio_ = None, None
        if self.n_components is not None:
            if self.n_components > min(n_units, n_rows):
                raise MarbleDataError(
                    f"n_components={self.n_components} exceeds the {n_units} units / {n_rows} bins of the "
                    f"recording; choose n_components <= {min(n_units, n_rows)} or None (no PCA)."
                )
            self.pca_ = PCA(n_components=int(self.n_components), random_state=self.seed).fit(Z)
            self.explained_variance_ratio_ = self.pca_.explained_variance_ratio_.copy()

    def _project(self, Z: np.ndarray) -> np.ndarray:
        """Apply the learned z-score and PCA to (n, unit) rates."""
        if self.zscore:
            Z = (Z - self.mean_) / self.scale_
        return self.pca_.transform(Z) if self.pca_ is not None else Z

    def _check_units(self, rec: xr.Dataset, rates: np.ndarray) -> None:
        ids = np.asarray(rec["unit"].values) if "unit" in rec.coords else np.arange(rates.shape[-1])
        if ids.shape != self.unit_ids_.shape or not np.array_equal(ids, self.unit_ids_):
            raise MarbleDataError(
                f"the recording has {ids.size} units but the builder was fitted on {self.unit_ids_.size} "
                "(or their ids differ); transform recordings with the same units as the fit part."
            )

    # --------------------------------------------------------------------------- samples
    def _samples(self, rates: np.ndarray, pieces: list[_Piece]) -> dict[str, np.ndarray]:
        """Positions, vectors and each sample's trial id, trial position and time row."""
        need = 2 if self.difference == "forward" else 3
        short = [tid for tid, _, rows in pieces if rows.size < need]
        kept = [p for p in pieces if p[2].size >= need]
        if not kept:
            raise MarbleDataError(
                f"every trial/segment is shorter than {need} bins, so no {self.difference} difference exists; "
                "use longer trials, finer bins or a wider alignment window."
            )
        if short:
            warnings.warn(f"skipped {len(short)} trial(s)/segment(s) shorter than {need} bins (no {self.difference} "
                          f"difference possible): ids {sorted(set(short))[:20]}.", UserWarning, stacklevel=4)
        X = self._project(self._stack(rates, kept))
        ends = np.cumsum([p[2].size for p in kept])
        parts: dict[str, list[np.ndarray]] = {"x": [], "v": [], "trial": [], "pos": [], "row": []}
        for (tid, pos, rows), Xp in zip(kept, np.split(X, ends[:-1])):
            x, v, sl = _differences(Xp, self.difference)
            parts["x"].append(x)
            parts["v"].append(v)
            parts["row"].append(rows[sl])
            parts["trial"].append(np.full(len(x), tid))
            parts["pos"].append(np.full(len(x), pos))
        return {k: np.concatenate(v) for k, v in parts.items()}

    def _assemble(self, rec: xr.Dataset, rates: np.ndarray, pieces: list[_Piece], bin_size: float) -> xr.Dataset:
        s = self._samples(rates, pieces)
        if self.pca_ is not None:
            dim_names = [f"PC{i + 1}" for i in range(self.pca_.n_components_)]
        else:
            dim_names = [f"unit{u}" for u in self.unit_ids_]
        skip = {self.variable, "spike_counts", "rates"}
        attrs: dict[str, Any] = {k: rec.attrs[k] for k in _PROVENANCE if k in rec.attrs}
        attrs.setdefault("source", "recording")
        attrs.update(
            n_components=int(self.n_components) if self.n_components is not None else "none",
            smooth=float(pp.check_sigma(self.smooth)), sqrt=int(self.sqrt), zscore=int(self.zscore),
            difference=self.difference, bin_size=float(bin_size), variable=self.variable,
            condition_by=self.condition or "", kind=str(rec.attrs.get("kind", "")),
        )
        return make_flow_field(
            s["x"], s["v"],
            condition=_condition_labels(rec, self.condition, s["pos"], s["row"]),
            trial=s["trial"],
            time=np.asarray(rec["time"].values, dtype=float)[s["row"]],
            dim_names=dim_names,
            sample_vars=_sample_vars(rec, skip, s["pos"], s["row"]),
            attrs=attrs,
        )

    # --------------------------------------------------------------------------- public API
    def fit(self, rec: xr.Dataset, y: Any = None) -> FlowFieldBuilder:
        """Learn the z-score statistics and PCA on ``rec`` (all bins of all its trials/segments)."""
        rates, pieces, _, bin_size = self._prepare(rec)
        self._fit_prepared(rec, rates, pieces, bin_size)
        return self

    def transform(self, rec: xr.Dataset) -> xr.Dataset:
        """Flow field of ``rec`` with the fitted preprocessing applied unchanged (e.g. a test part)."""
        check_is_fitted(self, "unit_ids_")
        rates, pieces, _, bin_size = self._prepare(rec)
        self._check_units(rec, rates)
        return self._assemble(rec, rates, pieces, bin_size)

    def fit_transform(self, rec: xr.Dataset, y: Any = None, **fit_params: Any) -> xr.Dataset:
        """Fit on ``rec`` and return its flow field (preprocesses once)."""
        rates, pieces, _, bin_size = self._prepare(rec)
        self._fit_prepared(rec, rates, pieces, bin_size)
        return self._assemble(rec, rates, pieces, bin_size)


def flow_field(
    rec: xr.Dataset,
    n_components: int | None = 10,
    smooth: float | None = 0.05,
    condition: str | None = None,
    **kw: Any,
) -> xr.Dataset:
    """One-call flow field of a recording: ``FlowFieldBuilder(...).fit_transform(rec)``.

    Use :class:`FlowFieldBuilder` directly to fit the preprocessing on one part and reuse it.
    """
    return FlowFieldBuilder(n_components=n_components, smooth=smooth, condition=condition, **kw).fit_transform(rec)
