"""An ensemble of MARBLE models trained with different seeds, aligned and averaged into one embedding.

Why (issue 16): one MARBLE model's embedding depends on its training seed - seeds land in a few
distinct layouts, so a figure computed from one seed moves with it. Members trained on the same
flow field embed the same training samples, so each member can be rotated onto a common frame by
orthogonal Procrustes on those training embeddings (row by row, or on label-binned means) and the
aligned members averaged: the average of ``n_members`` seeds moves far less with the seeds than
any single one. Every choice (reference member, rotations) uses the training data only.
``combine="concat"`` puts the rotated members side by side instead (a cosine kNN on it votes with
every member); ``n_components`` keeps the combined embedding's leading principal axes (fitted on
the training embedding): 32-D members projected to 3 axes are far more consistent across seeds
than 3-D models (benchmarks/seed_stability.py, part "recipes"). ``members`` makes members differ on
purpose (per-member MARBLE overrides, optionally one flow field per member): diverse members side by
side decode the macaque better than seeds of one setting (``recipes.get("macaque_ensemble_diverse")``).

>>> import marble_widgets as mw
>>> ens = mw.ensemble.MARBLEEnsemble(mw.recipes.get("rat_recommended").model(), n_members=5)  # doctest: +SKIP
>>> z = ens.fit(ff_train).transform(ff_test)                                                   # doctest: +SKIP
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from marble_widgets.estimator import MARBLE, json_params

#: file that lists an ensemble's members and alignment next to the members' model files
MANIFEST = "ensemble.json"
#: how the aligned members make one embedding: their mean, or side by side (see MARBLEEnsemble)
COMBINE = ("mean", "concat")
#: members of an ensemble given neither ``n_members`` nor ``members``
DEFAULT_MEMBERS = 5
_FORMAT = "marble_widgets.ensemble"


# ---------------------------------------------------------------------------- alignment maths
def _matched_points(z: np.ndarray, labels: np.ndarray | None, by: np.ndarray | None, bins: int,
                    lo_hi: tuple[float, float] | None) -> np.ndarray:
    """The rows Procrustes matches: every sample, or the label-binned means (empty bins NaN)."""
    if labels is None:
        return z
    from marble_widgets.analysis import binned_means

    coords = {"label": ("sample", labels)}
    if by is not None:
        coords["by"] = ("sample", by)
    emb = xr.DataArray(z, dims=("sample", "latent"), coords=coords)
    means = binned_means(emb, "label", bins, lo_hi, by=None if by is None else "by", normalize=False)
    return means.values.reshape(-1, z.shape[1])


def procrustes_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R (orthogonal) and translation t minimising ||source @ R + t - target|| over matched rows.

    Rows with a NaN in either array are skipped (empty label bins). Returns (R (d, d), t (d,)).
    """
    from marble_widgets.analysis import procrustes_rotation

    ok = np.isfinite(source).all(axis=1) & np.isfinite(target).all(axis=1)
    if ok.sum() < 2:
        raise ValueError("Procrustes needs at least 2 matched rows without NaN; the members share no label bins.")
    a, b = source[ok], target[ok]
    rot, _ = procrustes_rotation(a, b)
    return rot, b.mean(axis=0) - a.mean(axis=0) @ rot


def _residual(source: np.ndarray, target: np.ndarray) -> float:
    """Unexplained fraction of ``target``'s variance after the best rotation of ``source`` onto it."""
    rot, t = procrustes_fit(source, target)
    ok = np.isfinite(source).all(axis=1) & np.isfinite(target).all(axis=1)
    err = source[ok] @ rot + t - target[ok]
    return float(np.sum(err ** 2) / np.sum((target[ok] - target[ok].mean(axis=0)) ** 2))


def choose_reference(points: list[np.ndarray]) -> int:
    """The member the others fit best after rotation (smallest mean Procrustes residual onto it)."""
    m = len(points)
    cost = np.zeros(m)
    for j in range(m):
        cost[j] = np.mean([_residual(points[i], points[j]) for i in range(m) if i != j])
    return int(np.argmin(cost))


def align_members(points: list[np.ndarray], n_iter: int = 3) -> tuple[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Generalised Procrustes: rotate every member onto the reference, then onto the members' mean.

    ``points``: each member's matched rows (same rows for all). Returns the reference index and
    each member's (rotation, translation). ``n_iter`` re-alignments to the running mean make the
    common frame depend on all members rather than on the reference alone.
    """
    ref = choose_reference(points)
    template = points[ref]
    fits = [procrustes_fit(p, template) for p in points]
    for _ in range(n_iter):
        template = np.mean([p @ r + t for p, (r, t) in zip(points, fits)], axis=0)
        fits = [procrustes_fit(p, template) for p in points]
    return ref, fits


def principal_axes(z: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and the ``n_components`` leading principal axes (d, n) of the rows of ``z``.

    Why: a fixed linear projection of a wide embedding to few dimensions (fitted once, on the
    training embedding). Each axis's sign is fixed (largest-magnitude loading positive) so that
    refitting the same data gives the same projection.
    """
    if not 1 <= n_components <= z.shape[1]:
        raise ValueError(f"n_components must be between 1 and the embedding's {z.shape[1]} dimensions; "
                         f"got {n_components}.")
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    axes = vt[:n_components].T
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(n_components)])
    return mean, axes * signs


def combine_aligned(parts: list[np.ndarray], rotations: list[np.ndarray], translations: list[np.ndarray],
                    combine: str = "mean") -> np.ndarray:
    """Members' embeddings (each (n, d)) as one: mean of ``z R + t`` (n, d), or ``z R`` side by side (n, m * d).

    Side by side the translations are left out, so the concatenation keeps each member's dot products.
    """
    if combine == "mean":
        return np.mean([z @ r + t for z, r, t in zip(parts, rotations, translations)], axis=0)
    return np.hstack([z @ r for z, r in zip(parts, rotations)])


# ---------------------------------------------------------------------------- estimator
def _base_params(base: MARBLE | Mapping[str, Any] | None) -> dict[str, Any]:
    if base is None:
        return MARBLE().get_params()
    if isinstance(base, MARBLE):
        return base.get_params()
    if isinstance(base, Mapping):
        return MARBLE(**base).get_params()  # unknown names raise MARBLE's own TypeError
    raise TypeError(f"base must be a MARBLE instance or a dict of MARBLE parameters (e.g. "
                    f"recipes.get('rat_recommended').marble); got {type(base).__name__}.")


def _check_members(members: Any) -> None:
    """Per-member overrides: a sequence of >= 2 dicts of MARBLE parameters other than ``seed``."""
    if isinstance(members, (str, bytes, Mapping)) or not isinstance(members, Sequence) or len(members) < 2:
        raise ValueError(f"members must be None or a list of >= 2 dicts of MARBLE parameter overrides, one per "
                         f"member (e.g. [{{}}, {{'k': 15}}, {{'order': 1}}]); got {members!r}.")
    valid = set(MARBLE().get_params())
    for i, override in enumerate(members):
        if not isinstance(override, Mapping):
            raise ValueError(f"members[{i}] must be a dict of MARBLE parameters (e.g. {{'k': 15}}); got {override!r}.")
        unknown = sorted(set(override) - valid)
        if unknown:
            raise ValueError(f"members[{i}] sets {unknown}, which MARBLE does not have; valid: {sorted(valid)}.")
        if "seed" in override:
            raise ValueError(f"members[{i}] sets 'seed': members take their seeds from the ensemble's seed "
                             f"(member_seeds); drop it, or repeat a member's dict to get it with another seed.")


def same_samples(fields: Sequence[xr.Dataset], what: str = "flow_field") -> None:
    """Raise unless every flow field has the first one's samples in the same order.

    Compared: the sample count and every coordinate on ``sample`` the fields share (``trial``,
    ``time``, ``condition`` ...): members' inputs built with other smoothing or graph settings
    from the same trials pass, flow fields of other trials or shuffled rows do not.
    """
    first = fields[0]
    for i, other in enumerate(fields[1:], start=1):
        if other is first:
            continue
        if other.sizes.get("sample") != first.sizes.get("sample"):
            raise ValueError(f"{what}[{i}] has {other.sizes.get('sample')} samples and {what}[0] "
                             f"{first.sizes.get('sample')}: every member's flow field must hold the same samples in "
                             f"the same order (build them from one recording, e.g. with Recipe.flow_fields).")
        for name, coord in first.coords.items():
            if coord.dims != ("sample",) or name not in other.coords or other[name].dims != ("sample",):
                continue
            a, b = np.asarray(coord.values), np.asarray(other[name].values)
            if not np.array_equal(a, b):
                j = int(np.flatnonzero(a != b)[0])
                raise ValueError(f"{what}[{i}] has other samples than {what}[0]: coordinate {name!r} differs at "
                                 f"sample {j} ({b[j]!r} vs {a[j]!r}); every member's flow field must hold the same "
                                 f"samples in the same order.")


class MARBLEEnsemble:
    """MARBLE models (seeds ``seed * n_members + i``) aligned on the training data and combined.

    Why: a single model's layout depends on its seed; the aligned average of several does much
    less, so ensembles with disjoint seeds agree with each other (``benchmarks/seed_stability.py``).
    Members may also differ on purpose (``members``: graph size, order, ... and one flow field per
    member, e.g. other smoothing): on the macaque such a diverse ensemble decodes better than copies
    of the best single setting (``recipes.get("macaque_ensemble_diverse")``).

    Parameters
    ----------
    base : MARBLE (its parameters are used, it is never fitted) or dict of MARBLE parameters.
    n_members : models per ensemble (>= 2; default 5, or ``len(members)``).
    seed : ensemble seed; members get seeds ``seed * n_members + i``, so different ensemble seeds
        never share a member.
    align_on : None (match the members' training embeddings sample by sample) or the name of a
        numeric sample variable/coordinate of the flow field (e.g. ``"position"``) whose
        ``bins`` equal-width bins' mean embeddings are matched instead.
    by : with ``align_on``, an optional categorical sample variable (e.g. ``"direction"``) binned separately.
    n_iter : generalised-Procrustes re-alignments to the members' mean.
    n_components : None (keep every dimension) or the number of leading principal axes of the
        combined training embedding to keep (``projection_`` = (mean, axes), fitted in ``fit``).
    combine : ``"mean"`` (the aligned members averaged, ``out_dim`` latents) or ``"concat"`` (the
        members rotated, not translated, side by side: ``n_members * out_dim`` latents whose dot
        products are the members' own). With unit-norm members (``emb_norm``) the cosine similarity
        of concatenations is the members' mean cosine similarity, so a cosine kNN decoder votes with
        every member instead of with their blurred mean (benchmarks/seed_stability.py, part "recipes").
    members : None (every member is ``base``) or one dict of MARBLE parameter overrides per member
        (``[{}, {"k": 15}, {"order": 1}]``: ``base`` with these changes; not ``seed``). Repeat a dict
        to have that member with two seeds.

    ``fit``/``transform`` take one flow field shared by every member, or a sequence with one flow
    field per member (same samples in the same order, checked on the sample coordinates; e.g.
    ``Recipe.flow_fields``). An ensemble fitted on per-member flow fields must transform per-member
    flow fields too. ``transform(..., support=...)`` embeds on one graph with the support, per member
    (see :meth:`MARBLE.transform`).
    """

    def __init__(self, base: MARBLE | Mapping[str, Any] | None = None, n_members: int | None = None, seed: int = 0,
                 align_on: str | None = None, by: str | None = None, bins: int = 100, n_iter: int = 3,
                 n_components: int | None = None, combine: str = "mean",
                 members: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.base = base
        self.n_members = n_members
        self.seed = seed
        self.align_on = align_on
        self.by = by
        self.bins = bins
        self.n_iter = n_iter
        self.n_components = n_components
        self.combine = combine
        self.members = members

    # sklearn-style parameters -----------------------------------------------------------
    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The constructor's parameters (sklearn contract)."""
        return {k: getattr(self, k) for k in ("base", "n_members", "seed", "align_on", "by", "bins", "n_iter",
                                                 "n_components", "combine", "members")}

    def set_params(self, **params: Any) -> MARBLEEnsemble:
        """Set constructor parameters; unknown names raise ``ValueError``."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"MARBLEEnsemble has no parameter {key!r}; valid: {sorted(valid)}.")
            setattr(self, key, value)
        return self

    @property
    def size(self) -> int:
        """The number of members: ``n_members``, else ``len(members)``, else :data:`DEFAULT_MEMBERS`."""
        if self.n_members is not None:
            return self.n_members
        return len(self.members) if self.members is not None else DEFAULT_MEMBERS

    def _check_params(self) -> None:
        if self.members is not None:
            _check_members(self.members)
        n = self.size
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"n_members must be an integer >= 2 (an ensemble of one is a MARBLE model); got {n!r}.")
        if self.members is not None:
            if len(self.members) != n:
                raise ValueError(f"n_members={n} but members lists {len(self.members)} members: drop n_members "
                                 f"(it defaults to len(members)) or make them agree.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {self.seed!r}.")
        if not isinstance(self.n_iter, (int, np.integer)) or self.n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative integer, e.g. 3; got {self.n_iter!r}.")
        n = self.n_components
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
            raise ValueError(f"n_components must be None (keep every dimension) or an integer >= 1, e.g. 3; "
                             f"got {n!r}.")
        if self.combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE} (average the aligned members or put them side "
                             f"by side); got {self.combine!r}.")
        if self.by is not None and self.align_on is None:
            raise ValueError("by= splits the label bins of align_on; set align_on (e.g. 'position') or drop by.")

    @property
    def member_seeds(self) -> list[int]:
        """Training seeds of the members: disjoint between ensemble seeds."""
        return [int(self.seed) * int(self.size) + i for i in range(int(self.size))]

    def member_params(self) -> list[dict[str, Any]]:
        """Each member's MARBLE parameters: ``base``, the member's overrides, its seed."""
        self._check_params()
        base = _base_params(self.base)
        overrides = self.members if self.members is not None else [{}] * self.size
        return [{**base, **dict(o), "seed": s} for o, s in zip(overrides, self.member_seeds)]

    # inputs -----------------------------------------------------------------------------
    def _inputs(self, flow_field: xr.Dataset | Sequence[xr.Dataset], what: str = "flow_field") -> list[xr.Dataset]:
        """One flow field per member: a shared Dataset repeated, or the given sequence (1 or n_members, checked)."""
        if isinstance(flow_field, xr.Dataset):
            return [flow_field] * self.size
        if isinstance(flow_field, (str, bytes)) or not isinstance(flow_field, Sequence):
            raise TypeError(f"{what} must be a flow-field xarray.Dataset or a list of them, one per member; "
                            f"got {type(flow_field).__name__}.")
        fields = list(flow_field)
        if len(fields) not in (1, self.size) or not all(isinstance(f, xr.Dataset) for f in fields):
            raise ValueError(f"{what} must be one flow-field Dataset or a list of {self.size} (one per member); got "
                             f"a list of {len(fields)} ({sorted({type(f).__name__ for f in fields})}).")
        same_samples(fields, what)
        return fields * self.size if len(fields) == 1 else fields

    @staticmethod
    def _n_distinct(flow_field: xr.Dataset | Sequence[xr.Dataset]) -> int:
        """1 when every member reads one flow field, else the number of per-member flow fields given."""
        return 1 if isinstance(flow_field, xr.Dataset) else max(1, len({id(f) for f in flow_field}))

    # fitting ----------------------------------------------------------------------------
    def _labels(self, flow_field: xr.Dataset) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.align_on is None:
            return None, None
        out = []
        for name in (self.align_on, self.by):
            if name is None:
                out.append(None)
                continue
            if name not in flow_field.variables or flow_field[name].dims != ("sample",):
                known = sorted(str(k) for k, v in flow_field.variables.items() if v.dims == ("sample",))
                raise ValueError(f"align_on/by name a per-sample variable of the flow field; {name!r} is not one "
                                 f"(1-D sample variables: {known}).")
            out.append(flow_field[name].values)
        return out[0].astype(float), out[1]

    def _points(self, z: np.ndarray, labels: np.ndarray | None, by: np.ndarray | None) -> np.ndarray:
        lo_hi = None if labels is None else (float(np.nanmin(labels)), float(np.nanmax(labels)))
        return _matched_points(z, labels, by, int(self.bins), lo_hi)

    def fit(self, flow_field: xr.Dataset | Sequence[xr.Dataset], y: Any = None) -> MARBLEEnsemble:
        """Fit every member on its flow field, choose the reference and the rotations on their embeddings.

        ``flow_field``: one Dataset for every member, or one per member (same samples, same order).
        """
        params = self.member_params()
        if len({p["out_dim"] for p in params}) > 1:
            raise ValueError(f"members embed in {[p['out_dim'] for p in params]} dimensions: Procrustes rotates them "
                             f"onto one frame, so every member needs the same out_dim.")
        fields = self._inputs(flow_field)
        labels, by = self._labels(fields[0])
        self.members_ = [MARBLE(**p).fit(f) for p, f in zip(params, fields)]
        train = [m.transform(f).values for m, f in zip(self.members_, fields)]
        self.reference_, fits = align_members([self._points(z, labels, by) for z in train], int(self.n_iter))
        self.rotations_ = [r for r, _ in fits]
        self.translations_ = [t for _, t in fits]
        self.n_inputs_ = self._n_distinct(flow_field)
        self.projection_ = None
        if self.n_components is not None:
            self.projection_ = principal_axes(self._combined(train), int(self.n_components))
        return self

    def _combined(self, parts: list[np.ndarray]) -> np.ndarray:
        """The members' embeddings rotated onto the common frame, averaged or concatenated (no projection)."""
        return combine_aligned(parts, self.rotations_, self.translations_, self.combine)

    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise ValueError("this MARBLEEnsemble is not fitted yet: call fit(flow_field) first.")

    def transform(self, flow_field: xr.Dataset | Sequence[xr.Dataset], *,
                  support: xr.Dataset | Sequence[xr.Dataset] | None = None) -> xr.DataArray:
        """The members' embeddings of ``flow_field`` aligned and combined (sample, latent), sample labels kept.

        Their mean (or side by side, ``combine="concat"``), projected on the fitted principal axes
        with ``n_components``; ``latent`` = 0..n-1. ``flow_field`` and ``support`` as in :meth:`fit`
        (one shared or one per member); with ``support`` each member embeds its flow field on one
        graph with its support flow field (:meth:`MARBLE.transform`; condition labels ignored).
        """
        self._check_fitted()
        fields = self._inputs(flow_field)
        if self.n_inputs_ > 1 and self._n_distinct(flow_field) == 1:
            raise ValueError(f"this ensemble was fitted on {self.n_inputs_} per-member flow fields (other "
                             f"preprocessing per member): pass a list of {self.size} flow fields built the same way.")
        supports = [None] * self.size if support is None else self._inputs(support, "support")
        parts = [m.transform(f, support=s) for m, f, s in zip(self.members_, fields, supports)]
        z = self._combined([p.values for p in parts])
        if self.projection_ is not None:
            centre, axes = self.projection_
            z = (z - centre) @ axes
        return xr.DataArray(z, dims=("sample", "latent"), coords={**{k: c for k, c in parts[0].coords.items()
                                                                      if "latent" not in c.dims},
                                                                   "latent": np.arange(z.shape[1])},
                            name=parts[0].name, attrs=parts[0].attrs)

    def fit_transform(self, flow_field: xr.Dataset | Sequence[xr.Dataset], y: Any = None) -> xr.DataArray:
        """Fit, then embed the same flow field(s)."""
        return self.fit(flow_field).transform(flow_field)

    # persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the members' model files and ``ensemble.json`` (alignment, seeds) into ``directory``."""
        self._check_fitted()
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"save() takes a directory for the member files; {directory} is a file.")
        directory.mkdir(parents=True, exist_ok=True)
        files = [m.save(directory / f"member_{i}.pt").name for i, m in enumerate(self.members_)]
        params = {k: v for k, v in self.get_params().items() if k not in ("base", "members")}
        overrides = None if self.members is None else [json_params(dict(o)) for o in self.members]
        manifest = {"format": _FORMAT, "params": params, "members": files, "reference": self.reference_,
                    "base": json_params(_base_params(self.base)), "member_overrides": overrides,
                    "n_inputs": self.n_inputs_,
                    "rotations": [r.tolist() for r in self.rotations_],
                    "translations": [t.tolist() for t in self.translations_],
                    "projection": None if self.projection_ is None else [a.tolist() for a in self.projection_]}
        (directory / MANIFEST).write_text(json.dumps(manifest))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> MARBLEEnsemble:
        """Read an ensemble written by :meth:`save` (members through :meth:`MARBLE.load`)."""
        path = Path(directory) / MANIFEST
        if not path.is_file():
            raise ValueError(f"{directory} holds no {MANIFEST}; pass the directory given to MARBLEEnsemble.save().")
        try:
            manifest = json.loads(path.read_text())
            if manifest.get("format") != _FORMAT:
                raise ValueError(f"format is {manifest.get('format')!r}")
            names, params = list(manifest["members"]), dict(manifest["params"])
            rotations = [np.asarray(r, dtype=float) for r in manifest["rotations"]]
            translations = [np.asarray(t, dtype=float) for t in manifest["translations"]]
            reference = int(manifest["reference"])
            projection = manifest.get("projection")  # absent in manifests written before n_components
            projection = None if projection is None else tuple(np.asarray(a, dtype=float) for a in projection)
            # absent before per-member settings: base = member 0's parameters, one shared flow field
            base, overrides = manifest.get("base"), manifest.get("member_overrides")
            overrides = None if overrides is None else [_tuple_hidden(dict(o)) for o in overrides]
            n_inputs = int(manifest.get("n_inputs", 1))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path} is not a readable MARBLEEnsemble manifest: {err}") from None
        members = [MARBLE.load(Path(directory) / name, device=device) for name in names]  # ModelFileError if bad
        base = members[0].get_params() if base is None else _tuple_hidden(base)
        if device is not None:
            base["device"] = device
        out = cls(base=base, members=overrides, **params)
        out.members_, out.reference_, out.rotations_, out.translations_ = members, reference, rotations, translations
        out.projection_, out.n_inputs_ = projection, n_inputs
        return out


def _tuple_hidden(params: dict[str, Any]) -> dict[str, Any]:
    """MARBLE parameters read from JSON: ``hidden_channels`` back to a tuple."""
    if isinstance(params.get("hidden_channels"), list):
        params["hidden_channels"] = tuple(params["hidden_channels"])
    return params
