"""``MARBLE``: the scikit-learn-style estimator, the one door from flow fields to the engine.

``MARBLE(...).fit(flow_field)`` builds the geometry of the flow field (graph, gauges, kernels),
the derivative features and the network, and trains it with MARBLE's contrastive loss;
``transform`` embeds any flow field with the fitted settings (its own graph, eval mode).
Parameter names and defaults follow the reference implementation (docs/spec.md §16), collected in
:data:`PARAMETERS`; departures are marked there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin

from marble_widgets import __version__
from marble_widgets.data.containers import check_flow_field, sample_labels

from marble_widgets.engine.features import feature_count, feature_names
from marble_widgets.engine.geometry import Geometry, build_geometry
from marble_widgets.engine.network import FeatureSource, MarbleNetwork, NetworkSpec, build_feature_source
from marble_widgets.engine.loss import check_loss, check_temperature
from marble_widgets.engine.training import Callback, check_training_options, train_network
from marble_widgets.model_file import ModelFileError, read_model_file, write_model_file

#: name -> (default, where the reference sets it, meaning). One source of truth (docs/spec.md §16).
PARAMETERS: dict[str, tuple[Any, str, str]] = {
    "order": (2, "yaml order", "derivative order p"),
    "k": (20, "construct_dataset k", "CkNN neighbours"),
    "delta": (1.0, "construct_dataset delta", "CkNN radius factor"),
    "spacing": (0.0, "construct_dataset spacing", "FPS covering radius / diameter (0 keeps all)"),
    "local_gauges": (False, "construct_dataset local_gauges", "local PCA frames + connections"),
    "var_explained": (0.9, "construct_dataset var_explained", "manifold-dimension threshold"),
    "frac_geodesic_nb": (1.5, "construct_dataset frac_geodesic_nb", "local PCA size K = k * frac"),
    "diffusion": (True, "yaml diffusion", "learnable heat diffusion of the signal (t0 = 0)"),
    "inner_product_features": (False, "yaml inner_product_features", "inner-product features (§8)"),
    "include_self": (True, "yaml include_self", "signal itself among the features"),
    "include_positions": (False, "yaml include_positions", "positions in front of the features"),
    "hidden_channels": ((32,), "yaml hidden_channels", "MLP hidden widths"),
    "out_dim": (3, "yaml out_channels", "embedding dimension"),
    "batch_norm": (True, "yaml batch_norm", "BatchNorm1d in hidden layers"),
    "dropout": (0.0, "yaml dropout", "dropout in hidden layers"),
    "bias": (True, "yaml bias", "biases of the Linear layers"),
    "vec_norm": (False, "yaml vec_norm", "L2-normalise each order's features per node"),
    "emb_norm": (False, "yaml emb_norm", "L2-normalise the embedding"),
    "epochs": (100, "yaml epochs", "maximum number of epochs"),
    "batch_size": (64, "yaml batch_size", "anchors per minibatch"),
    "lr": (0.01, "yaml lr", "SGD learning rate"),
    "momentum": (0.9, "yaml momentum", "SGD momentum"),
    "patience": (20, "[ours] (reference: none)", "early stop after this many epochs without val gain"),
    "temperature": (1.0, "[ours] (reference: 1)", "contrastive logits divided by it (1 = reference)"),
    "loss": ("sigmoid", "[ours] (reference: sigmoid)", "sigmoid (pair loss) or infonce (softmax over the batch)"),
    "selection": ("best_val", "[ours] (reference: best_val)", "state kept: best_val, last or average"),
    "lr_schedule": ("plateau", "[ours] (reference: plateau)", "plateau (ReduceLROnPlateau) or cosine"),
    "average_from": (0.5, "[ours]", "selection='average': average epochs from this fraction on"),
    "seed": (0, "yaml seed (unused by the reference)", "drives every random step"),
    "device": ("cpu", "[ours]", "torch device"),
    "verbose": (True, "[ours]", "progress bar and messages"),
}

#: the largest MLP input we accept (docs/spec.md §14 item 15): beyond it PCA first
MAX_FEATURES = 100_000


class MARBLE(TransformerMixin, BaseEstimator):
    """MARBLE (Gosztolai et al. 2025): unsupervised embedding of flow fields on manifolds.

    Why: compare the local dynamics of many conditions/animals in one latent space whose
    per-condition distributions can be compared by optimal transport. Parameters: see
    :data:`PARAMETERS` (reference names and defaults). Learned attributes: ``network_``,
    ``geometry_``, ``loss_history_``, ``n_features_in_``, ``feature_names_``, ``conditions_``,
    ``best_epoch_`` (the epoch whose state is kept; the last averaged one for
    ``selection="average"``), ``diffusion_time_``, ``n_directions_``.

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
        inner_product_features: bool = False,
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
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} but torch sees no CUDA GPU (torch.cuda.is_available() is "
                "False): use device='cpu' or install a CUDA build of torch."
            )

    def _check_vec_norm(self, n_signal: int) -> None:
        if self.vec_norm and n_signal == 1:
            raise ValueError("vec_norm=True is undefined for a scalar signal (s=1): use vec_norm=False.")

    # ------------------------------------------------------------------ fit / transform
    def _geometry(self, flow_field: xr.Dataset, *, fitting: bool) -> Geometry:
        """Geometry of a flow field with the estimator's settings (no subsampling at transform)."""
        x, v, condition = check_flow_field(flow_field, self.k)
        # transform: same number of derivative directions as fitted (local gauges only)
        manifold_dim = None if fitting or not self.local_gauges else getattr(self, "n_directions_", None)
        return build_geometry(
            x, v, condition, k=int(self.k), delta=float(self.delta),
            spacing=float(self.spacing) if fitting else 0.0, local_gauges=bool(self.local_gauges),
            var_explained=float(self.var_explained), frac_geodesic_nb=float(self.frac_geodesic_nb),
            manifold_dim=manifold_dim,
            seed=self.seed, verbose=bool(self.verbose),
        )

    def _source(self, geometry: Geometry) -> FeatureSource:
        """Feature rows of a geometry for the network (see engine.network)."""
        return build_feature_source(
            geometry, order=int(self.order), include_self=bool(self.include_self),
            include_positions=bool(self.include_positions), vec_norm=bool(self.vec_norm),
            diffusion=bool(self.diffusion), device=self.device,
        )

    def _spec(self, geometry: Geometry) -> NetworkSpec:
        n_signal = geometry.n_directions if geometry.local_gauges else geometry.signal.shape[1]
        self._check_vec_norm(n_signal)
        n_lin = feature_count(n_signal, geometry.n_directions, int(self.order), bool(self.include_self))
        if n_lin > MAX_FEATURES:
            raise ValueError(
                f"order={self.order} on {geometry.signal.shape[1]}-D vectors gives {n_lin} features "
                f"(> {MAX_FEATURES}): reduce the dimension with PCA first (~5-20 components) or lower order."
            )
        return NetworkSpec(
            n_signal=int(n_signal), n_directions=int(geometry.n_directions), order=int(self.order),
            include_self=bool(self.include_self),
            n_positions=int(geometry.pos.shape[1]) if self.include_positions else 0,
            inner_product_features=bool(self.inner_product_features),
            hidden_channels=_hidden(self.hidden_channels), out_dim=int(self.out_dim),
            batch_norm=bool(self.batch_norm), dropout=float(self.dropout), bias=bool(self.bias),
            emb_norm=bool(self.emb_norm), diffusion=bool(self.diffusion),
        )

    def fit(self, flow_field: xr.Dataset, y: Any = None, *, callback: Callback | None = None) -> MARBLE:
        """Learn the embedding network from a flow-field Dataset (x, v on (sample, dim)).

        Why: one network for all conditions, trained unsupervised (docs/spec.md §10-11). ``callback(info)``
        is called after every epoch (keys: epoch, n_epochs, train_loss, val_loss, lr,
        diffusion_time, elapsed); returning True stops training.
        """
        self._check_params()
        geometry = self._geometry(flow_field, fitting=True)
        spec = self._spec(geometry)
        source = self._source(geometry)
        devices = [torch.device(self.device).index or 0] if str(self.device).startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.seed))
            network = MarbleNetwork(spec).to(self.device)
            result = train_network(
                network, source, geometry.edge_index, geometry.n_nodes, epochs=int(self.epochs),
                batch_size=int(self.batch_size), lr=float(self.lr), momentum=float(self.momentum),
                patience=self.patience, seed=int(self.seed), device=self.device,
                verbose=bool(self.verbose), callback=callback, temperature=float(self.temperature),
                loss=str(self.loss),
                selection=str(self.selection), lr_schedule=str(self.lr_schedule),
                average_from=float(self.average_from),
            )
        self.network_ = network
        self.geometry_ = geometry
        dim_names = [str(d) for d in flow_field["dim"].values]
        self._set_fitted(
            spec, result.history, result.best_epoch, n_features_in=len(dim_names),
            names=_names(spec, dim_names), conditions=np.asarray(geometry.condition_labels).astype(str),
        )
        return self

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

    @torch.no_grad()
    def _embed(self, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
        """Linear features and embeddings of every node of ``geometry`` (eval mode)."""
        source = self._source(geometry)
        net = self.network_.eval()
        feats = source.all(net.diffusion, geometry.n_nodes)
        pos = source.pos(torch.arange(geometry.n_nodes, device=feats.device))
        z = net(feats, pos)
        if pos is not None:
            feats = torch.cat([pos, feats], dim=1)
        return feats.cpu().numpy(), z.cpu().numpy()

    def transform(self, flow_field: xr.Dataset) -> xr.DataArray:
        """Embed a flow field: its own graph with the fitted settings, trained network, eval mode.

        Graphs are built per ``condition`` of ``flow_field`` (as in ``fit``), so held-out data
        whose condition labels must stay unseen should be relabelled to one condition first
        (``ff.assign_coords(condition=("sample", ["test"] * ff.sizes["sample"]))``).
        Returns an ``embedding`` DataArray (sample, latent) carrying the input's sample labels.
        """
        self._check_fitted()
        geometry = self._geometry(flow_field, fitting=False)
        _, z = self._embed(geometry)
        out = np.full((flow_field.sizes["sample"], z.shape[1]), np.nan)
        out[geometry.sample_index] = z
        coords = sample_labels(flow_field)
        return xr.DataArray(
            out, dims=("sample", "latent"), name="embedding",
            coords={**coords, "latent": np.arange(z.shape[1])},
        )

    def fit_transform(self, flow_field: xr.Dataset, y: Any = None, **fit_params) -> xr.DataArray:
        """Fit, then embed the same flow field (with its full, unsubsampled graph)."""
        return self.fit(flow_field, **fit_params).transform(flow_field)

    def inspect(self, flow_field: xr.Dataset, max_neighbors: int = 32) -> xr.Dataset:
        """Geometry behind each sample for the dashboards (design.md "Geometry inspection").

        Returns neighbours (nearest first, -1 padded), frames, transported neighbour vectors
        ``R_ij T_j^T v_j``, the features fed to the MLP (linear features; positions in front
        when used) and the embedding, all on the input's ``sample`` order.
        """
        self._check_fitted()
        geometry = self._geometry(flow_field, fitting=False)
        feats, z = self._embed(geometry)
        return _inspection(flow_field, geometry, feats, z, self.feature_names_, int(self.order), max_neighbors)

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
            path, params=_json_params(self.get_params()), spec=self.network_.spec.to_dict(), meta=meta,
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
            model.network_.load_state_dict(payload["state_dict"])
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
def _hidden(value) -> tuple[int, ...]:
    """hidden_channels as a tuple of positive ints (an int means one hidden layer)."""
    seq = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h > 0 for h in seq):
        raise ValueError(f"hidden_channels must be positive integers, e.g. (32,) or [64]; got {value!r}.")
    return tuple(int(h) for h in seq)


def _json_params(params: dict) -> dict:
    """get_params() made JSON-safe (tuples -> lists, numpy scalars -> Python)."""
    out = {}
    for key, val in params.items():
        if isinstance(val, tuple):
            val = [int(v) for v in val]
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


def _sorted_neighbors(geometry: Geometry, max_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Per node: up to ``max_neighbors`` graph neighbours, nearest first (-1 padded), and edge ids."""
    i, j = geometry.edge_index
    dist = np.linalg.norm(geometry.pos[j] - geometry.pos[i], axis=1)
    order = np.lexsort((dist, i))
    i_s = i[order]
    start = np.searchsorted(i_s, np.arange(geometry.n_nodes))
    rank = np.arange(len(i_s)) - start[i_s]
    keep = rank < max_neighbors
    width = max(int(rank[keep].max()) + 1 if keep.any() else 1, 1)
    nb = np.full((geometry.n_nodes, width), -1, dtype=np.int64)
    eid = np.full((geometry.n_nodes, width), -1, dtype=np.int64)
    nb[i_s[keep], rank[keep]] = j[order][keep]
    eid[i_s[keep], rank[keep]] = order[keep]
    return nb, eid


def _inspection(flow_field, geometry, feats, z, names, order, max_neighbors) -> xr.Dataset:
    """Assemble the inspection Dataset on the input's sample order."""
    n_samples = flow_field.sizes["sample"]
    nb, eid = _sorted_neighbors(geometry, max_neighbors)
    frames = geometry.frames
    coords_j = np.einsum("nad,na->nd", frames, geometry.signal)  # T_j^T v_j
    valid = eid >= 0
    transported = np.full(nb.shape + (frames.shape[2],), np.nan)
    moved = coords_j[nb[valid]]
    if geometry.connections is not None:
        moved = np.einsum("eab,eb->ea", geometry.connections[eid[valid]], moved)
    transported[valid] = moved
    rows = geometry.sample_index

    def scatter(values, fill):
        out = np.full((n_samples,) + values.shape[1:], fill, dtype=np.result_type(values, type(fill)))
        out[rows] = values
        return out

    nb_samples = np.where(nb >= 0, rows[np.maximum(nb, 0)], -1)
    coords = sample_labels(flow_field)
    coords.update(dim=flow_field["dim"].values, feature=list(names), latent=np.arange(z.shape[1]))
    return xr.Dataset(
        {
            "neighbors": (("sample", "neighbor"), scatter(nb_samples, -1)),
            "frame": (("sample", "dim", "tangent"), scatter(frames, np.nan)),
            "transported": (("sample", "neighbor", "tangent"), scatter(transported, np.nan)),
            "features": (("sample", "feature"), scatter(feats, np.nan)),
            "embedding": (("sample", "latent"), scatter(z, np.nan)),
        },
        coords=coords,
        attrs={"manifold_dim": int(geometry.n_directions), "order": order,
               "local_gauges": int(bool(geometry.local_gauges))},
    )

