"""Named MARBLE settings: the paper's recipes and the settings chosen on training data only.

One table for the demo and the benchmarks (and your notebooks), so a figure in the README can be
re-derived in a notebook with the same settings. Each recipe says how to build the flow field
(``mw.flow_field`` / ``FlowFieldBuilder`` arguments) and how to configure :class:`MARBLE`.

>>> import marble_widgets as mw
>>> recipe = mw.recipes.get("rat_tuned")
>>> ff = mw.flow_field(mw.datasets.rat_hippocampus(), **recipe.flow_field)   # doctest: +SKIP
>>> model = recipe.model(epochs=10).fit(ff)                                  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import xarray as xr

if TYPE_CHECKING:
    from marble_widgets.ensemble import MARBLEEnsemble
    from marble_widgets.estimator import MARBLE


@dataclass(frozen=True)
class Recipe:
    """Flow-field and model settings under one name, with where they come from."""

    name: str
    flow_field: Mapping[str, Any]
    marble: Mapping[str, Any]
    source: str
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def model(self, **overrides: Any) -> MARBLE:
        """A fresh :class:`MARBLE` with this recipe's settings (``overrides`` win)."""
        from marble_widgets.estimator import MARBLE

        return MARBLE(**{**self.marble, **overrides})

    def ensemble(self, **overrides: Any) -> MARBLEEnsemble:
        """A fresh :class:`~marble_widgets.ensemble.MARBLEEnsemble` of this recipe's models.

        Its settings (``n_members``, alignment) come from ``extra["ensemble"]``; ``overrides`` win.
        """
        from marble_widgets.ensemble import MARBLEEnsemble

        if "ensemble" not in self.extra:
            with_ens = sorted(name for name, r in RECIPES.items() if "ensemble" in r.extra)
            raise ValueError(f"recipe {self.name!r} has no ensemble settings; use .model() or one of {with_ens}.")
        return MARBLEEnsemble(dict(self.marble), **{**self.extra["ensemble"], **overrides})

    def with_changes(self, name: str, source: str, **marble: Any) -> Recipe:
        """A new recipe: these MARBLE settings changed, everything else kept."""
        return Recipe(name, self.flow_field, {**self.marble, **marble}, source, extra=self.extra)


def split_time(recording: xr.Dataset, train_fraction: float = 0.8,
               start: float = 0.0) -> tuple[xr.Dataset, xr.Dataset]:
    """Bins ``[start, train_fraction)`` of a continuous recording (in time order) and the rest.

    The rat protocol: the first 80 % trains, the last 20 % tests. Fractions are of the whole
    session; ``start > 0`` drops an initial stretch from the first part (nested tuning splits).
    """
    if "time" not in recording.dims:
        raise ValueError(f"split_time needs a recording with a 'time' dimension; got dims {tuple(recording.dims)}.")
    if not 0.0 <= start < train_fraction < 1.0:
        raise ValueError(f"need 0 <= start < train_fraction < 1, e.g. 0.8; got start={start!r}, "
                         f"train_fraction={train_fraction!r}.")
    n = recording.sizes["time"]
    first, cut = int(round(start * n)), int(round(train_fraction * n))
    if first >= cut or cut >= n:
        raise ValueError(f"train_fraction={train_fraction} (start={start}) leaves an empty part of {n} bins.")
    return recording.isel(time=slice(first, cut)), recording.isel(time=slice(cut, n))


_RAT_PAPER = Recipe(
    name="rat_paper",
    flow_field={"n_components": 10, "smooth": 0.25},
    marble={"order": 1, "k": 15, "delta": 1.5, "hidden_channels": (64,), "out_dim": 32, "epochs": 100,
            "diffusion": False, "include_positions": True, "emb_norm": True, "patience": None},
    source="Gosztolai et al. 2025, rat hippocampus decoding (the reference trains all epochs)",
)
_RAT_TUNED = _RAT_PAPER.with_changes(
    "rat_tuned", "chosen on the first 60 % / validated on the next 20 % of the session "
    "(benchmarks/fidelity_tuning.py); the test part never seen",
    batch_size=256, k=50, hidden_channels=(128,),
)
_RAT_RECOMMENDED = _RAT_TUNED.with_changes(
    "rat_recommended", "the tuned settings with a wider graph, a cosine schedule and the weights averaged "
    "over the second half of training: the most seed-stable choice measured (benchmarks/seed_stability.py)",
    k=200, lr_schedule="cosine", selection="average", average_from=0.5, patience=None,
)
_RAT_ENSEMBLE = Recipe(
    name="rat_ensemble", flow_field=_RAT_RECOMMENDED.flow_field, marble=_RAT_RECOMMENDED.marble,
    source="the recommended settings, 5 seeds rotated by orthogonal Procrustes onto their common frame, fitted on "
    "the training embeddings' position-binned means per running direction, and averaged (marble_widgets.ensemble; "
    "benchmarks/seed_stability.py, part 'ensemble': decoding SD over ensembles 0.12 cm vs 0.36 for single seeds, "
    "3-D consistency 0.94 vs 0.88, mean error 7.00 vs 6.67 cm)",
    notes="the alignment reads the training part's position and direction (rotations only; the test part is "
    "embedded without labels); aligning on the samples themselves needs no labels but gave 3-D consistency 0.87",
    extra={"ensemble": {"n_members": 5, "align_on": "position", "by": "direction"}},
)
_MACAQUE_PAPER = Recipe(
    name="macaque_paper",
    flow_field={"n_components": 5, "smooth": 0.1},
    marble={"order": 2, "k": 30, "delta": 1.5, "hidden_channels": (100,), "out_dim": 20, "epochs": 120,
            "diffusion": True, "patience": None},
    source="Gosztolai et al. 2025, macaque reaching (one graph per reach condition), 20 ms bins",
    extra={"bin_size": 0.02},
)
_MACAQUE_TUNED = _MACAQUE_PAPER.with_changes(
    "macaque_tuned", "chosen in every outer fold on an inner fifth of the training trials "
    "(benchmarks/fidelity.py); one graph over all trials, labels unused",
    include_positions=True,
)

#: every named recipe; read with :func:`get`
RECIPES: Mapping[str, Recipe] = MappingProxyType(
    {r.name: r for r in (_RAT_PAPER, _RAT_TUNED, _RAT_RECOMMENDED, _RAT_ENSEMBLE, _MACAQUE_PAPER, _MACAQUE_TUNED)})


def get(name: str) -> Recipe:
    """The recipe called ``name`` (see :data:`RECIPES`)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise KeyError(f"no recipe named {name!r}; choose one of {sorted(RECIPES)}.") from None
