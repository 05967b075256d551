"""``MARBLE``: the scikit-learn-style estimator, the one door from flow fields to the engine.

``MARBLE(...).fit(flow_field)`` builds the geometry of the flow field (graph, gauges, kernels),
the derivative features and the network, and trains it with MARBLE's contrastive loss;
``transform`` embeds any flow field with the fitted settings (its own graph, eval mode) and
``results`` returns the flow field with the embedding and the geometry behind it added.
Parameter names and defaults follow the reference implementation (docs/spec.md §16): the defaults
are those of ``MARBLE.__init__``; :data:`PARAMETERS` says where the reference sets each one and
what it means (departures are marked [ours]); :func:`parameter_table` joins both.
"""
from __future__ import annotations

import hashlib
import inspect as _inspect
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin

from marble_widgets import __version__
from marble_widgets.data.containers import FEATURE_COORDS, check_flow_field, sample_labels

from marble_widgets.engine.config import FeatureConfig, GraphConfig, TrainingConfig, check_inner_product_features
from marble_widgets.engine.feature_store import check_store_option, embed_stored, feature_source, resolve_store
from marble_widgets.engine.features import feature_coords, feature_names
from marble_widgets.engine.geometry import Geometry, build_geometry
from marble_widgets.engine.layers import check_invariant_dims, invariant_names
from marble_widgets.engine.network import MarbleNetwork, NetworkSpec, upgrade_state_dict
from marble_widgets.engine.results import result_variables
from marble_widgets.engine.loss import check_loss, check_temperature
from marble_widgets.engine.training import Callback, check_training_options, train_network
from marble_widgets.model_file import ModelFileError, read_model_file, write_model_file

#: name -> (where the reference sets it, meaning); the defaults live in ``MARBLE.__init__`` only
PARAMETERS: dict[str, tuple[str, str]] = {
    "order": ("yaml order", "derivative order p"),
    "k": ("construct_dataset k", "CkNN neighbours"),
    "delta": ("construct_dataset delta", "CkNN radius factor"),
    "spacing": ("construct_dataset spacing", "FPS covering radius / diameter (0 keeps all)"),
    "local_gauges": ("construct_dataset local_gauges", "local PCA frames + connections"),
    "var_explained": ("construct_dataset var_explained", "manifold-dimension threshold"),
    "frac_geodesic_nb": ("construct_dataset frac_geodesic_nb", "local PCA size K = k * frac"),
    "diffusion": ("yaml diffusion", "learnable heat diffusion of the signal (t0 = 0)"),
    "inner_product_features": ("yaml inner_product_features",
                               "inner-product features (§8); 'invariant' [ours]: exact rotation invariants"),
    "include_self": ("yaml include_self", "signal itself among the features"),
    "include_positions": ("yaml include_positions", "positions in front of the features"),
    "hidden_channels": ("yaml hidden_channels", "MLP hidden widths"),
    "out_dim": ("yaml out_channels", "embedding dimension"),
    "batch_norm": ("yaml batch_norm", "BatchNorm1d in hidden layers"),
    "dropout": ("yaml dropout", "dropout in hidden layers"),
    "bias": ("yaml bias", "biases of the Linear layers"),
    "vec_norm": ("yaml vec_norm", "L2-normalise each order's features per node"),
    "emb_norm": ("yaml emb_norm", "L2-normalise the embedding"),
    "epochs": ("yaml epochs", "maximum number of epochs"),
    "batch_size": ("yaml batch_size", "anchors per minibatch"),
    "lr": ("yaml lr", "SGD learning rate"),
    "momentum": ("yaml momentum", "SGD momentum"),
    "patience": ("[ours] (reference: none)", "early stop after this many epochs without val gain"),
    "temperature": ("[ours] (reference: 1)", "contrastive logits divided by it (1 = reference)"),
    "loss": ("[ours] (reference: sigmoid)", "sigmoid (pair loss) or infonce (softmax over the batch)"),
    "selection": ("[ours] (reference: best_val)", "state kept: best_val, last or average"),
    "lr_schedule": ("[ours] (reference: plateau)", "plateau (ReduceLROnPlateau) or cosine"),
    "average_from": ("[ours]", "selection='average': average epochs from this fraction on"),
    "seed": ("yaml seed (unused by the reference)", "drives every random step"),
    "device": ("[ours]", "torch device; a GPU pays with batch_size ~1024 (at 64 it waits on launches)"),
    "feature_store": ("[ours]", "None (RAM), 'auto' or a path: diffusion-free features on disk (zarr)"),
    "verbose": ("[ours]", "progress bar and messages"),
}

#: variables :meth:`MARBLE.results` adds to the flow field (never overwritten)
RESULT_VARIABLES = ("embedding", "neighbors", "frame", "transported", "features")
#: coordinates :meth:`MARBLE.results` adds on its new dims
RESULT_COORDS = ("feature", *FEATURE_COORDS, "latent")


def parameter_table() -> list[tuple[str, Any, str, str]]:
    """(name, default, reference source, meaning) per ``MARBLE`` parameter, in signature order.

    Why: one place for the defaults (the signature) and one for their provenance (:data:`PARAMETERS`).
    """
    params = _inspect.signature(MARBLE.__init__).parameters
    return [(name, p.default, *PARAMETERS[name]) for name, p in params.items() if name != "self"]


#: torch's global RNG is shared by threads: seeded network initialisation holds this lock
_TORCH_RNG_LOCK = threading.Lock()

#: the largest MLP input we accept (docs/spec.md §14 item 15): beyond it PCA first
MAX_FEATURES = 100_000


class MARBLE(TransformerMixin, BaseEstimator):
    """MARBLE (Gosztolai et al. 2025): unsupervised embedding of flow fields on manifolds.

    Why: compare the local dynamics of many conditions/animals in one latent space whose
    per-condition distributions can be compared by optimal transport. Parameters: see
    :data:`PARAMETERS` (reference names; defaults in this signature). Learned attributes:
    ``network_``, ``geometry_`` (the geometry trained on; kept so that ``transform``/``results``
    on the same flow field reuse it, not saved in the model file), ``loss_history_``,
    ``n_features_in_``, ``feature_names_``, ``conditions_``, ``best_epoch_`` (the epoch whose
    state is kept; the last averaged one for ``selection="average"``), ``diffusion_time_``,
    ``n_directions_``, ``timings_`` (seconds of fit's stages: geometry, features, training).

    Training options beyond the reference ([ours]; the defaults are the reference's rule):
    ``temperature`` divides the contrastive logits (with ``emb_norm=True`` the reference's
    logits are capped at +/-1 and the loss saturates within a few epochs; ``T < 1`` uncaps them,
    but on the rat it decoded worse and with 3-D embeddings ``T = 0.1`` did not train, so the
    recommended settings keep 1; a smaller ``T`` also scales the gradients by ``1/T``);
    ``loss="infonce"`` replaces the reference's per-pair sigmoid loss by InfoNCE (as in CEBRA):
    each anchor's positive against the other anchors' positives, cross-entropy over cosine
    similarities divided by ``temperature`` (pass ~0.1-0.5 with it; 1 is too flat); on the rat
    with the recommended settings it did not beat the sigmoid loss (T 0.05-0.5, 3 seeds;
    ``benchmarks/seed_stability.py --infonce``);
    ``lr_schedule="cosine"`` anneals the learning rate to 0 over ``epochs``;
    ``selection`` keeps the best-validation state (``"best_val"``, with early stopping after
    ``patience`` epochs), the last state (``"last"``) or the weight average of the epochs from
    ``average_from * epochs`` on (``"average"``, BatchNorm statistics recomputed);
    ``patience`` must be None unless ``selection="best_val"``.
    ``benchmarks/seed_stability.py`` measures what they change (decoding, spread over seeds).

    ``feature_store`` ([ours], joint training beyond memory): with ``diffusion=False`` the features
    have no parameters; ``None`` keeps them in RAM; a path writes them there once, condition by
    condition, as a row-chunked float32 zarr store (reused if it holds this geometry's features,
    refused if it holds others) and training reads its minibatch rows from it (same seed, same
    embedding as from RAM); ``"auto"`` uses a temporary store (deleted with the model) only when
    the features as float64 would exceed 2 GiB, the in-memory cap, and RAM otherwise.
    ``feature_store_`` is the store used (None: RAM). A path needs ``diffusion=False``.

    ``inner_product_features``: False (the linear features), True (the reference's inner products,
    which are not rotation-invariant for vector fields, docs/spec.md §8) or ``"invariant"`` ([ours]):
    least-squares derivatives of the field and their exact invariants under any rotation or
    reflection of the ambient axes (or, with ``local_gauges=True``, of the tangent frames), no
    parameters (:class:`~marble_widgets.engine.layers.InvariantFeatures`, which says how they scale);
    it needs a vector field in the ambient space and ``order`` <= 2.
    """

    def __init__(
        self,
        order: int = 2,
        k: int = 20,
        delta: float = 1.0,
        spacing: float = 0.0,
        local_gauges: bool = False,
        var_explained: float = 0.9,
        frac_geodesic_nb: float = 1.5,
        diffusion: bool = True,
        inner_product_features: bool | str = False,
        include_self: bool = True,
        include_positions: bool = False,
        hidden_channels: tuple[int, ...] | list[int] | int = (32,),
        out_dim: int = 3,
        batch_norm: bool = True,
        dropout: float = 0.0,
        bias: bool = True,
        vec_norm: bool = False,
        emb_norm: bool = False,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 0.01,
        momentum: float = 0.9,
        patience: int | None = 20,
        temperature: float = 1.0,
        loss: str = "sigmoid",
        selection: str = "best_val",
        lr_schedule: str = "plateau",
        average_from: float = 0.5,
        seed: int = 0,
        device: str = "cpu",
        feature_store: str | os.PathLike | None = None,
        verbose: bool = True,
    ) -> None:
        self.order = order
        self.k = k
        self.delta = delta
        self.spacing = spacing
        self.local_gauges = local_gauges
        self.var_explained = var_explained
        self.frac_geodesic_nb = frac_geodesic_nb
        self.diffusion = diffusion
        self.inner_product_features = inner_product_features
        self.include_self = include_self
        self.include_positions = include_positions
        self.hidden_channels = hidden_channels
        self.out_dim = out_dim
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.bias = bias
        self.vec_norm = vec_norm
        self.emb_norm = emb_norm
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.patience = patience
        self.temperature = temperature
        self.loss = loss
        self.selection = selection
        self.lr_schedule = lr_schedule
        self.average_from = average_from
        self.seed = seed
        self.device = device
        self.feature_store = feature_store
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> None:
        """Raise a ValueError naming any parameter outside its valid range."""
        ints = {"order": 0, "k": 1, "out_dim": 1, "epochs": 1, "batch_size": 1}
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
        for name in ("delta", "lr", "frac_geodesic_nb"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)!r}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}.")
        if not 0.0 <= float(self.momentum) < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {self.momentum!r}.")
        if self.patience is not None and (not isinstance(self.patience, (int, np.integer)) or self.patience < 1):
            raise ValueError(f"patience must be a positive integer or None; got {self.patience!r}.")
        check_temperature(self.temperature)
        check_loss(self.loss)
        check_training_options(self.selection, self.lr_schedule, self.average_from, self.patience)
        _hidden(self.hidden_channels)
        if self.order == 0 and not self.include_self:
            raise ValueError("order=0 with include_self=False leaves no features: raise order or include_self.")
        check_store_option(self.feature_store, self.diffusion)
        if check_inner_product_features(self.inner_product_features) == "invariant":
            invariant_names(self.order, bool(self.include_self))  # raises beyond order 2
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} but torch sees no CUDA GPU (torch.cuda.is_available() is "
                "False): use device='cpu' or install a CUDA build of torch."
            )

    def _check_vec_norm(self, n_signal: int) -> None:
        if self.vec_norm and n_signal == 1:
            raise ValueError("vec_norm=True is undefined for a scalar signal (s=1): use vec_norm=False.")

    # ------------------------------------------------------------------ engine settings
    def _graph_config(self, *, fitting: bool) -> GraphConfig:
        """Geometry settings; no subsampling outside fit (every sample gets an embedding)."""
        return GraphConfig(
            k=int(self.k), delta=float(self.delta), spacing=float(self.spacing) if fitting else 0.0,
            local_gauges=bool(self.local_gauges), var_explained=float(self.var_explained),
            frac_geodesic_nb=float(self.frac_geodesic_nb), seed=self.seed,
        )

    def _feature_config(self) -> FeatureConfig:
        return FeatureConfig(
            order=int(self.order), include_self=bool(self.include_self),
            include_positions=bool(self.include_positions), vec_norm=bool(self.vec_norm),
            diffusion=bool(self.diffusion),
            inner_product_features=check_inner_product_features(self.inner_product_features),
        )

    def _training_config(self) -> TrainingConfig:
        return TrainingConfig(
            epochs=int(self.epochs), batch_size=int(self.batch_size), lr=float(self.lr),
            momentum=float(self.momentum), patience=self.patience, temperature=float(self.temperature),
            loss=str(self.loss), selection=str(self.selection), lr_schedule=str(self.lr_schedule),
            average_from=float(self.average_from), seed=int(self.seed), device=str(self.device),
        )

    # ------------------------------------------------------------------ geometry
    def _build_geometry(self, flow_field: xr.Dataset, *, fitting: bool, runner: dict | None = None) -> Geometry:
        """Geometry of a flow field with the estimator's settings (no subsampling at transform).

        ``runner``: ``client``/``scheduler`` of :func:`~marble_widgets.engine.geometry.build_geometry`.
        """
        x, v, condition = check_flow_field(flow_field, self.k)
        # transform: same number of derivative directions as fitted (local gauges only)
        manifold_dim = None if fitting or not self.local_gauges else getattr(self, "n_directions_", None)
        return build_geometry(x, v, condition, self._graph_config(fitting=fitting),
                              manifold_dim=manifold_dim, verbose=bool(self.verbose), **(runner or {}))

    def _geometry(self, flow_field: xr.Dataset, runner: dict | None = None) -> Geometry:
        """The full geometry of ``flow_field`` for transform/results, built once for the data fit on.

        The training geometry is reused when it covers every sample (``spacing == 0``); otherwise
        the full one is built on the first call and kept for the next. Other data: built per call.
        """
        key = (_fingerprint(flow_field), self._graph_config(fitting=False))
        cached = getattr(self, "_geometry_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        geometry = self._build_geometry(flow_field, fitting=False, runner=runner)
        if getattr(self, "_fit_key", None) == key:
            self._geometry_cache = (key, geometry)
        return geometry

    def _spec(self, geometry: Geometry) -> NetworkSpec:
        spec = NetworkSpec.for_geometry(
            geometry, self._feature_config(), hidden_channels=_hidden(self.hidden_channels),
            out_dim=int(self.out_dim), batch_norm=bool(self.batch_norm), dropout=float(self.dropout),
            bias=bool(self.bias), emb_norm=bool(self.emb_norm),
        )
        self._check_vec_norm(spec.n_signal)
        if spec.invariant:
            check_invariant_dims(spec.n_signal, spec.n_directions)
        if spec.n_linear > MAX_FEATURES:
            raise ValueError(
                f"order={self.order} on {geometry.signal.shape[1]}-D vectors gives {spec.n_linear} features "
                f"(> {MAX_FEATURES}): reduce the dimension with PCA first (~5-20 components) or lower order."
            )
        return spec

    # ------------------------------------------------------------------ fit / transform
    def fit(self, flow_field: xr.Dataset, y: Any = None, *, callback: Callback | None = None,
            client: Any = None, scheduler: str | None = None) -> MARBLE:
        """Learn the embedding network from a flow-field Dataset (x, v on (sample, dim)).

        Why: one network for all conditions, trained unsupervised (docs/spec.md §10-11). ``callback(info)``
        is called after every epoch with an :class:`~marble_widgets.engine.training.EpochInfo`
        (keys: epoch, n_epochs, train_loss, val_loss, lr, diffusion_time, elapsed); returning True
        stops training. ``client``/``scheduler``: where the geometry's per-condition stages run
        (a ``dask.distributed.Client``, or dask's ``"threads"``/``"processes"``/``"synchronous"``;
        both None: in this process), e.g. for a joint flow field of many sessions
        (:func:`~marble_widgets.sessions.joint_flow_field`). They are arguments of the call, not
        parameters: a live cluster is not a hyper-parameter (it cannot be cloned or saved) and
        every runner builds the identical geometry, so the model does not depend on it.
        """
        self._check_params()
        t0 = time.perf_counter()
        geometry = self._build_geometry(flow_field, fitting=True, runner=_runner(client, scheduler))
        t1 = time.perf_counter()
        spec = self._spec(geometry)
        store = resolve_store(self.feature_store, geometry, self._feature_config(), owner=self)
        source = feature_source(geometry, self._feature_config(), device=self.device, store=store)
        self.feature_store_ = None if store is None else str(store)
        t2 = time.perf_counter()
        network, result = self._init_and_train(spec, source, geometry, callback)
        self.timings_ = {"geometry_s": t1 - t0, "features_s": t2 - t1, "training_s": time.perf_counter() - t2}
        self.network_ = network
        self.geometry_ = geometry
        self._fit_key = (_fingerprint(flow_field), self._graph_config(fitting=False))
        self._geometry_cache = (self._fit_key, geometry) if float(self.spacing) == 0 else None
        dim_names = [str(d) for d in flow_field["dim"].values]
        self._set_fitted(
            spec, result.history, result.best_epoch, n_features_in=len(dim_names),
            names=_names(spec, dim_names), conditions=np.asarray(geometry.condition_labels).astype(str),
        )
        return self

    def _init_and_train(self, spec: NetworkSpec, source: Any, geometry: Geometry,
                        callback: Callback | None) -> tuple[MarbleNetwork, Any]:
        """Seeded initialisation and training, safe when fits run in parallel threads.

        torch's global RNG is shared by a process's threads (dask's threaded scheduler runs fits
        side by side): the seeded initialisation holds :data:`_TORCH_RNG_LOCK`, and so does
        training with dropout (its only other torch draw); minibatches use numpy generators.
        """
        devices = [torch.device(self.device).index or 0] if str(self.device).startswith("cuda") else []

        def train(network: MarbleNetwork) -> Any:
            return train_network(network, source, geometry.edge_index, geometry.n_nodes,
                                 self._training_config(), verbose=bool(self.verbose), callback=callback)

        with _TORCH_RNG_LOCK, torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.seed))
            network = MarbleNetwork(spec).to(self.device)
            if float(self.dropout) > 0:
                return network, train(network)
        return network, train(network)

    def _set_fitted(self, spec: NetworkSpec, history: dict, best_epoch: int, *, n_features_in: int,
                    names: list[str], conditions: np.ndarray | None) -> None:
        """Learned attributes shared by fit and load."""
        self.n_features_in_ = int(n_features_in)
        self.n_directions_ = spec.n_directions
        self.feature_names_ = list(names)
        self.conditions_ = conditions
        self.best_epoch_ = int(best_epoch)
        self.diffusion_time_ = float(self.network_.diffusion_time)
        self.loss_history_ = xr.Dataset(
            {key: ("epoch", np.asarray(val, dtype=float)) for key, val in history.items()},
            coords={"epoch": np.arange(len(history["train_loss"]))},
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise ValueError("this MARBLE instance is not fitted yet: call fit(flow_field) first.")

    def _store_for(self, geometry: Geometry) -> str | None:
        """The feature store written at fit, if ``geometry`` is the one fitted on (else None: RAM)."""
        return getattr(self, "feature_store_", None) if geometry is getattr(self, "geometry_", None) else None

    @torch.no_grad()
    def _embed(self, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
        """Linear features and embeddings of every node of ``geometry`` (eval mode)."""
        source = feature_source(geometry, self._feature_config(), device=self.device, store=self._store_for(geometry))
        net = self.network_.eval()
        feats = source.full(net.diffusion)
        pos = source.pos(torch.arange(geometry.n_nodes, device=feats.device))
        z = net(feats, pos)
        if pos is not None:
            feats = torch.cat([pos, feats], dim=1)
        return feats.cpu().numpy(), z.cpu().numpy()

    def transform(self, flow_field: xr.Dataset, *, support: xr.Dataset | None = None, client: Any = None,
                  scheduler: str | None = None) -> xr.DataArray:
        """Embed a flow field: its own graph with the fitted settings, trained network, eval mode.

        Graphs are built per ``condition`` of ``flow_field`` (as in ``fit``), so held-out data
        whose condition labels must stay unseen should be relabelled to one condition first
        (``ff.assign_coords(condition=("sample", ["test"] * ff.sizes["sample"]))``). On the flow
        field the model was fitted on, the geometry is built at most once (see :meth:`results`).
        Returns an ``embedding`` DataArray (sample, latent) carrying the input's sample labels.
        ``client``/``scheduler``: where a geometry that must be built runs (as in :meth:`fit`).

        ``support`` (another flow field on the same dims, e.g. the training trials): ``flow_field``
        is embedded on ONE graph built over the support's samples and its own, so few held-out
        samples get the neighbourhoods of a well-sampled manifold (benchmarks/exp_macaque_recipes.py
        compares both ways per macaque recipe). Both are relabelled to a single condition for that
        graph: held-out data embedded with support ignore condition labels, and the support's labels
        are never read. Only ``flow_field``'s samples are returned; neither input is modified.
        """
        self._check_fitted()
        if support is not None:
            return self._transform_with_support(flow_field, support, _runner(client, scheduler))
        geometry = self._geometry(flow_field, _runner(client, scheduler))
        return self._embedding(flow_field, *self._embed_geometry(geometry))

    def _embed_geometry(self, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of ``geometry``'s nodes (from the fitted feature store when it is the fit's) and their samples."""
        store = self._store_for(geometry)
        z = embed_stored(self.network_, store, self.device) if store else self._embed(geometry)[1]
        return z, np.asarray(geometry.sample_index)

    def _transform_with_support(self, flow_field: xr.Dataset, support: xr.Dataset, runner: dict) -> xr.DataArray:
        """``flow_field``'s rows of the embedding of one single-condition graph over ``support`` then ``flow_field``."""
        joint, n_support = joint_with_support(flow_field, support)
        z, index = self._embed_geometry(self._geometry(joint, runner))
        keep = index >= n_support
        return self._embedding(flow_field, z[keep], index[keep] - n_support)

    def _embedding(self, flow_field: xr.Dataset, z: np.ndarray, index: np.ndarray) -> xr.DataArray:
        """Rows ``z`` placed at sample positions ``index`` (NaN elsewhere), with ``flow_field``'s sample labels."""
        out = np.full((flow_field.sizes["sample"], z.shape[1]), np.nan)
        out[index] = z
        coords = sample_labels(flow_field)
        return xr.DataArray(
            out, dims=("sample", "latent"), name="embedding",
            coords={**coords, "latent": np.arange(z.shape[1])},
        )

    def fit_transform(self, flow_field: xr.Dataset, y: Any = None, **fit_params) -> xr.DataArray:
        """Fit, then embed the same flow field (with its full, unsubsampled graph); ``client`` and
        ``scheduler`` in ``fit_params`` serve both steps."""
        runner = {key: fit_params[key] for key in ("client", "scheduler") if key in fit_params}
        return self.fit(flow_field, **fit_params).transform(flow_field, **runner)

    def results(self, flow_field: xr.Dataset, max_neighbors: int = 32, *, client: Any = None,
                scheduler: str | None = None) -> xr.Dataset:
        """The flow field with the embedding and the geometry behind each sample added on ``sample``.

        Why: one per-sample object (design.md "Results") that every view and analysis reads.
        Every variable and coord of ``flow_field`` is kept unchanged; added: ``embedding``
        (sample, latent), ``neighbors`` (sample, neighbor) graph neighbours as sample positions,
        nearest first, -1 padded; ``frame`` (sample, dim, tangent) gauge frames; ``transported``
        (sample, neighbor, tangent) neighbours' vectors ``R_ij T_j^T v_j`` in the sample's frame
        (NaN where neighbors == -1); ``features`` (sample, feature) the MLP's input (positions in
        front when used), with coords ``feature`` (names), ``order`` (-1 positions, 0 signal,
        1..p derivatives), ``component`` and ``direction``. attrs ``manifold_dim``, ``order``,
        ``local_gauges``. Raises a ValueError if ``flow_field`` already holds one of these names.
        ``client``/``scheduler``: where a geometry that must be built runs (as in :meth:`fit`).
        """
        self._check_fitted()
        if isinstance(max_neighbors, bool) or not isinstance(max_neighbors, (int, np.integer)) or max_neighbors < 1:
            raise ValueError(f"max_neighbors must be a positive integer (e.g. 32); got {max_neighbors!r}.")
        clash = sorted(set(RESULT_VARIABLES + RESULT_COORDS) & set(map(str, flow_field.variables)))
        if clash:
            raise ValueError(
                f"flow_field already holds {clash}, which results() would add: rename or drop them first "
                f"(e.g. flow_field.rename({{{clash[0]!r}: {clash[0] + '_input'!r}}}))."
            )
        geometry = self._geometry(flow_field, _runner(client, scheduler))
        feats, z = self._embed(geometry)
        added = result_variables(geometry, feats, z, flow_field.sizes["sample"], max_neighbors)
        feature = {"feature": list(self.feature_names_), **_feature_coords(self.network_.spec)}
        coords = {name: ("feature", values) for name, values in feature.items()}
        out = flow_field.assign(added).assign_coords({**coords, "latent": np.arange(z.shape[1])})
        out.attrs = {**flow_field.attrs}
        out.attrs.update(manifold_dim=int(geometry.n_directions), order=int(self.order),
                         local_gauges=int(bool(geometry.local_gauges)))
        return out

    def inspect(self, flow_field: xr.Dataset, max_neighbors: int = 32) -> xr.Dataset:
        """Deprecated alias of :meth:`results` (same Dataset)."""
        warnings.warn("MARBLE.inspect is renamed MARBLE.results (same Dataset); call results(flow_field).",
                      FutureWarning, stacklevel=2)
        return self.results(flow_field, max_neighbors=max_neighbors)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write params, weights and fitted metadata to one model file (read back without pickles)."""
        self._check_fitted()
        meta = {
            "feature_names": list(self.feature_names_), "best_epoch": self.best_epoch_,
            "conditions": [str(c) for c in self.conditions_],
            "n_features_in": self.n_features_in_,
            "history": {k: [float(x) for x in self.loss_history_[k].values] for k in self.loss_history_},
        }
        return write_model_file(
            path, params=json_params(self.get_params()), spec=self.network_.spec.to_dict(), meta=meta,
            state_dict=self.network_.state_dict(), package_version=__version__,
        )

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> MARBLE:
        """Read a model written by :meth:`save`; any other file raises :class:`ModelFileError`."""
        payload = read_model_file(path)
        params = payload["params"]
        if isinstance(params.get("hidden_channels"), list):
            params["hidden_channels"] = tuple(params["hidden_channels"])
        if device is not None:
            params["device"] = device
        try:
            model = cls(**params)
            spec = NetworkSpec.from_dict(payload["spec"])
            model.network_ = MarbleNetwork(spec)
            state = payload["state_dict"]
            if payload["format_version"] < 3:
                state = upgrade_state_dict(state, spec)
            model.network_.load_state_dict(state)
        except (TypeError, ValueError, KeyError, RuntimeError) as err:
            raise ModelFileError(f"{path} is damaged or inconsistent: {err}") from None
        model.network_.to(model.device).eval()
        meta = payload["meta"]
        model._set_fitted(
            spec, meta["history"], meta["best_epoch"], n_features_in=meta["n_features_in"],
            names=meta["feature_names"], conditions=np.asarray(meta["conditions"]),
        )
        return model


# ---------------------------------------------------------------------- helpers
#: the one condition label of the graph that embeds a flow field together with its support
SUPPORT_CONDITION = "joint"


def joint_with_support(flow_field: xr.Dataset, support: xr.Dataset) -> tuple[xr.Dataset, int]:
    """``support``'s samples then ``flow_field``'s as a new flow field (x, v, one condition), and the support's size.

    Why: :meth:`MARBLE.transform`'s ``support`` graph; condition labels are dropped so that no
    label (the held-out data's or the support's) shapes it. Raises if the two do not share dims.
    """
    x, v, _ = check_flow_field(flow_field)
    xs, vs = _checked_support(support)
    dims, support_dims = _dim_labels(flow_field), _dim_labels(support)
    if dims != support_dims:
        raise ValueError(f"support's dims {support_dims} differ from flow_field's {dims}: embed a flow field with "
                         f"support from the same preprocessing (e.g. one FlowFieldBuilder fitted on the training "
                         f"part).")
    n = len(xs) + len(x)
    joint = xr.Dataset({"x": (("sample", "dim"), np.vstack([xs, x])), "v": (("sample", "dim"), np.vstack([vs, v]))},
                       coords={"dim": list(dims), "condition": ("sample", np.full(n, SUPPORT_CONDITION))})
    return joint, len(xs)


def _checked_support(support: Any) -> tuple[np.ndarray, np.ndarray]:
    """The support's positions and vectors, checked by :func:`check_flow_field` (its labels are not needed)."""
    if not isinstance(support, xr.Dataset):
        raise TypeError(f"support must be a flow-field xarray.Dataset (e.g. the training flow field) or None; "
                        f"got {type(support).__name__}.")
    if "sample" in support.dims:  # condition labels are not read: any one will do for the check
        support = support.assign_coords(condition=("sample", np.full(support.sizes["sample"], SUPPORT_CONDITION)))
    try:
        xs, vs, _ = check_flow_field(support)
    except ValueError as err:
        raise ValueError(str(err).replace("flow_field", "support", 1)) from None
    return xs, vs


def _dim_labels(flow_field: xr.Dataset) -> list[str]:
    """The ``dim`` labels of a flow field (their positions when it has no ``dim`` coordinate)."""
    if "dim" in flow_field.coords:
        return [str(d) for d in flow_field["dim"].values]
    return [str(i) for i in range(flow_field.sizes["dim"])]


def _runner(client: Any, scheduler: str | None) -> dict:
    """``build_geometry``'s runner keywords (checked there)."""
    return {"client": client, "scheduler": scheduler}


def _hidden(value) -> tuple[int, ...]:
    """hidden_channels as a tuple of positive ints (an int means one hidden layer)."""
    seq = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h > 0 for h in seq):
        raise ValueError(f"hidden_channels must be positive integers, e.g. (32,) or [64]; got {value!r}.")
    return tuple(int(h) for h in seq)


def json_params(params: dict) -> dict:
    """get_params() made JSON-safe (tuples -> lists, numpy scalars -> Python)."""
    out = {}
    for key, val in params.items():
        if isinstance(val, tuple):
            val = [int(v) for v in val]
        elif isinstance(val, os.PathLike):
            val = os.fspath(val)
        elif isinstance(val, np.generic):
            val = val.item()
        out[key] = val
    return out


def _names(spec: NetworkSpec, dim_names: list[str] | None) -> list[str]:
    """Feature names: positions (if used) then the derivative features (docs/spec.md §7.3 layout)."""
    names = feature_names(spec.n_signal, spec.n_directions, spec.order, spec.include_self)
    if spec.n_positions:
        pos = dim_names if dim_names and len(dim_names) == spec.n_positions else [
            f"x{i + 1}" for i in range(spec.n_positions)]
        names = [f"pos {p}" for p in pos] + names
    return names


def _feature_coords(spec: NetworkSpec) -> dict[str, np.ndarray]:
    """``feature_order``/``_component``/``_direction`` per feature: positions (order -1), then derivatives."""
    coords = feature_coords(spec.n_signal, spec.n_directions, spec.order, spec.include_self)
    n = spec.n_positions
    return {
        "feature_order": np.concatenate([np.full(n, -1, dtype=np.int64), coords["order"]]),
        "feature_component": np.concatenate([np.arange(n, dtype=np.int64), coords["component"]]),
        "feature_direction": np.concatenate([np.full(n, "", dtype=object), coords["direction"]]).astype(str),
    }


def _fingerprint(flow_field: xr.Dataset) -> str:
    """A digest of a flow field's x, v and condition labels (identifies the data fit on)."""
    digest = hashlib.blake2b(digest_size=16)
    for name in ("x", "v"):
        values = np.ascontiguousarray(flow_field[name].values, dtype=float)
        digest.update(str(values.shape).encode())
        digest.update(values.tobytes())
    if "condition" in flow_field.variables:
        digest.update("\x1f".join(map(str, flow_field["condition"].values)).encode())
    return digest.hexdigest()
