"""Settings of the three engine stages as small frozen objects: graph, features, training.

Why: the estimator's parameters travel to the engine as three values instead of long argument
lists. The defaults are the reference's (docs/spec.md §16) and equal ``MARBLE.__init__``'s
(``tests/test_estimator.py`` checks it); the estimator always passes every field.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict


@dataclass(frozen=True)
class GraphConfig:
    """Geometry settings (:func:`~marble_widgets.engine.geometry.build_geometry`).

    ``k``, ``delta``: CkNN graph; ``spacing``: furthest-point covering radius (fraction of each
    condition's diameter, 0 keeps all); ``local_gauges``, ``var_explained``, ``frac_geodesic_nb``:
    local PCA frames; ``seed``: furthest-point start (None: index 0).
    """

    k: int = 20
    delta: float = 1.0
    spacing: float = 0.0
    local_gauges: bool = False
    var_explained: float = 0.9
    frac_geodesic_nb: float = 1.5
    seed: int | None = 0


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings (:func:`~marble_widgets.engine.network.build_feature_source`).

    ``order``: derivative order p; ``include_self``: the signal among the features;
    ``include_positions``: positions in front of them; ``vec_norm``: L2-normalise each order per
    node; ``diffusion``: learnable heat diffusion of the signal; ``inner_product_features``:
    False (linear features), True (the reference's inner products, §8) or ``"invariant"``
    (least-squares derivatives and their exact rotation invariants, [ours]; see
    :class:`~marble_widgets.engine.layers.InvariantFeatures`).
    """

    order: int = 2
    include_self: bool = True
    include_positions: bool = False
    vec_norm: bool = False
    diffusion: bool = True
    inner_product_features: bool | str = False


#: the values ``inner_product_features`` accepts: off, the reference's inner products, exact invariants
INNER_PRODUCT_MODES = (False, True, "invariant")


def check_inner_product_features(value) -> bool | str:
    """``value`` as False, True or ``"invariant"``; a ValueError naming the allowed values otherwise.

    Why: True/False keep the reference's meaning; the string selects the invariant extension.
    """
    if isinstance(value, str):
        if value == "invariant":
            return value
    elif value in (True, False):
        return bool(value)
    raise ValueError(f"inner_product_features must be False, True or 'invariant'; got {value!r}.")


@dataclass(frozen=True)
class TrainingConfig:
    """Training settings (:func:`~marble_widgets.engine.training.train_network`); see its docstring."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    patience: int | None = 20
    temperature: float = 1.0
    loss: str = "sigmoid"
    selection: str = "best_val"
    lr_schedule: str = "plateau"
    average_from: float = 0.5
    seed: int = 0
    device: str = "cpu"


class EpochInfo(TypedDict):
    """What the training callback receives after every epoch (docs/design.md "Estimator")."""

    epoch: int
    n_epochs: int
    train_loss: float
    val_loss: float
    lr: float
    diffusion_time: float
    elapsed: float


#: the keys of :class:`EpochInfo`, in order (the training view reads them; torch-free to import)
EPOCH_KEYS: tuple[str, ...] = tuple(EpochInfo.__annotations__)
#: per-epoch series kept in ``TrainResult.history`` (and ``MARBLE.loss_history_``)
HISTORY_KEYS = ("train_loss", "val_loss", "lr", "diffusion_time")
