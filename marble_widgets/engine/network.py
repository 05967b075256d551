"""The MARBLE network and the feature source that feeds it rows of derivative features.

Network (docs/spec.md §6.3, §8, §9): optional diffusion time -> linear derivative features ->
optional inner products -> MLP (Linear, BatchNorm, ReLU, Dropout per hidden layer) -> optional
L2 normalisation. A *source* holds what the features need and hands the network the rows of a
minibatch; training reads every source the same way (one path, :meth:`FeatureSource.cached`):
the features of all nodes are evaluated once per epoch at the current diffusion time, the MLP
steps every minibatch and the diffusion time once per epoch with the epoch's summed gradient.

- :class:`StaticFeatures` - no diffusion: features computed once, ``(N, E)``.
- :class:`DiffusedFeatures` - diffusion: the signal's Chebyshev heat basis ``(N, deg+1, s)``
  (scalar heat per channel, or the vector heat method with local gauges) and the geometry's
  derivative operator; features of every node at the network's current time.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from marble_widgets.engine.config import FeatureConfig, check_inner_product_features
from marble_widgets.engine.features import (
    DerivativeOperator,
    derivative_features,
    derivative_stack,
    feature_count,
    order_kernels,
    order_operators,
    signal_in_frames,
)
from marble_widgets.engine.laplacian import chebyshev_heat_basis, normalized_laplacian
from marble_widgets.engine.layers import Diffusion, InnerProductFeatures, InvariantFeatures, invariant_names

#: Chebyshev degree of the heat kernel; truncation error < 2e-4 for every t <= MAX_TIME
DIFFUSION_DEGREE = 16
#: the learnable time is kept in [1e-8, MAX_TIME] so the degree-16 expansion stays accurate
MAX_TIME = 16.0


@dataclass(frozen=True)
class NetworkSpec:
    """Every size and switch of the network, JSON-safe (saved with the weights)."""

    n_signal: int
    n_directions: int
    order: int
    include_self: bool = True
    n_positions: int = 0
    inner_product_features: bool | str = False
    hidden_channels: tuple[int, ...] = (32,)
    out_dim: int = 3
    batch_norm: bool = True
    dropout: float = 0.0
    bias: bool = True
    emb_norm: bool = False
    diffusion: bool = True
    diffusion_degree: int = DIFFUSION_DEGREE

    @property
    def n_linear(self) -> int:
        """Width of the linear derivative features: ``s * sum_q d'^q - s [not include_self]``."""
        return feature_count(self.n_signal, self.n_directions, self.order, self.include_self)

    @property
    def n_channels(self) -> int:
        """Number of length-``s`` vectors in the linear features (inner-product channels)."""
        return self.n_linear // self.n_signal

    @property
    def invariant(self) -> bool:
        """Whether the MLP reads exact invariants (``inner_product_features="invariant"``)."""
        return self.inner_product_features == "invariant"

    @property
    def n_in(self) -> int:
        """Width of the MLP input (positions in front of the (inner-product or invariant) features)."""
        if self.invariant:
            core = len(invariant_names(self.order, self.include_self))
        else:
            core = self.n_channels if self.inner_product_features else self.n_linear
        return core + self.n_positions

    @classmethod
    def for_geometry(cls, geometry, features: FeatureConfig, **architecture) -> NetworkSpec:
        """The spec of a network on ``geometry`` with ``features``; ``architecture``: the MLP's
        ``hidden_channels``, ``out_dim``, ``batch_norm``, ``dropout``, ``bias``, ``emb_norm``."""
        n_signal = geometry.n_directions if geometry.local_gauges else geometry.signal.shape[1]
        return cls(
            n_signal=int(n_signal), n_directions=int(geometry.n_directions),
            order=int(features.order), include_self=bool(features.include_self),
            n_positions=int(geometry.pos.shape[1]) if features.include_positions else 0,
            inner_product_features=check_inner_product_features(features.inner_product_features),
            diffusion=bool(features.diffusion), **architecture,
        )

    def to_dict(self) -> dict:
        """JSON-safe dict (tuples become lists)."""
        out = asdict(self)
        out["hidden_channels"] = list(self.hidden_channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> NetworkSpec:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["hidden_channels"] = tuple(int(h) for h in data["hidden_channels"])
        return cls(**data)


def make_mlp(channels: list[int], *, batch_norm: bool, dropout: float, bias: bool) -> nn.Module:
    """MLP ``channels[0] -> ... -> channels[-1]``; hidden: Linear, BatchNorm1d, ReLU, Dropout (§9).

    ``torch_geometric.nn.MLP`` (plain last layer); imported here because importing PyG costs
    seconds. Parameters: ``lins.<l>.weight/bias``, ``norms.<l>.module.*`` (BatchNorm1d).
    PyG initialises every layer twice (at construction and in ``reset_parameters``); the layers
    are initialised once more from the random state at the call, in order, with the same laws
    as ``nn.Linear`` (Kaiming-uniform weights, uniform biases of bound ``1/sqrt(fan_in)``), so a
    seeded network draws exactly what it drew when it was a sequence of ``nn.Linear``.
    """
    from torch_geometric.nn import MLP

    state = torch.random.get_rng_state()
    mlp = MLP(list(channels), dropout=float(dropout), norm="batch_norm" if batch_norm else None,
              bias=bool(bias), plain_last=True, act="relu")
    torch.random.set_rng_state(state)
    for lin in mlp.lins:
        lin.reset_parameters()
    return mlp


def upgrade_state_dict(state_dict: dict[str, torch.Tensor], spec: NetworkSpec) -> dict[str, torch.Tensor]:
    """Weights saved with the model-file format <= 2 MLP layout (``nn.Sequential``: ``mlp.<i>.*``,
    i counting Linear, BatchNorm1d, ReLU, Dropout modules) renamed to :func:`make_mlp`'s keys."""
    n_layers = len(spec.hidden_channels) + 1
    per_hidden = 2 + int(spec.batch_norm) + int(spec.dropout > 0)
    renames = {}
    for layer in range(n_layers):
        renames[f"mlp.{layer * per_hidden}"] = f"mlp.lins.{layer}"
        if spec.batch_norm and layer < n_layers - 1:
            renames[f"mlp.{layer * per_hidden + 1}"] = f"mlp.norms.{layer}.module"
    out = {}
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        out[f"{renames.get(module, module)}.{leaf}"] = value
    return out


class MarbleNetwork(nn.Module):
    """MARBLE's encoder: linear features (+ positions) -> [inner products or invariants] -> MLP -> [L2 norm].

    Learnable: the diffusion time (``self.diffusion.t``, used by the feature source), the
    inner-product matrices ``O_j`` and the MLP. ``forward(features (B, E_lin), positions (B, n))``
    returns embeddings ``(B, out_dim)``.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        self.diffusion = Diffusion(spec.diffusion_degree) if spec.diffusion else None
        if spec.invariant:
            self.inner = InvariantFeatures(spec.n_signal, spec.n_directions, spec.order, spec.include_self)
        else:
            self.inner = (
                InnerProductFeatures(spec.n_channels, spec.n_signal) if spec.inner_product_features else None
            )
        self.mlp = make_mlp(
            [spec.n_in, *spec.hidden_channels, spec.out_dim],
            batch_norm=spec.batch_norm, dropout=spec.dropout, bias=spec.bias,
        )

    def forward(self, features: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Embed rows of linear features ``(B, E_lin)`` (and positions ``(B, n)``) to ``(B, out_dim)``."""
        h = self.inner(features) if self.inner is not None else features
        if self.spec.n_positions:
            h = torch.cat([positions, h], dim=1)
        z = self.mlp(h)
        if self.spec.emb_norm:
            z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return z

    def clamp_time(self) -> None:
        """Keep the diffusion time within the range where its expansion is accurate."""
        if self.diffusion is not None:
            self.diffusion.clamp_(MAX_TIME)

    @property
    def diffusion_time(self) -> float:
        """Current diffusion time (NaN without diffusion)."""
        return self.diffusion.time if self.diffusion is not None else float("nan")


class _RowGradients:
    """The gradient of an epoch's cached features, accumulated on the rows minibatches read.

    Why: autograd's gradient of ``features[index]`` is a dense ``(N, E)`` tensor per step, zeroed
    and added in full: O(N) per step, O(N^2 / batch) per epoch (3 ms of a 5 ms step at 10^5
    nodes). Here a step costs O(batch). Same sums in the same order as autograd's: each step's
    duplicate rows are summed first (``index_put_`` with accumulate, as autograd does), then
    added once to their rows.
    """

    def __init__(self, like: torch.Tensor) -> None:
        self.grad = torch.zeros_like(like)
        self.used = False

    def add(self, index: torch.Tensor, grad: torch.Tensor) -> None:
        unique, inverse = torch.unique(index, return_inverse=True)
        step = grad.new_zeros((len(unique), grad.shape[1])).index_put_((inverse,), grad, accumulate=True)
        self.grad.index_add_(0, unique, step)
        self.used = True


class _GatherRows(torch.autograd.Function):
    """``values[index]`` whose backward adds the rows' gradient into a :class:`_RowGradients`."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, index: torch.Tensor, sink: _RowGradients) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.sink = sink
        return values[index]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, None]:
        (index,) = ctx.saved_tensors
        ctx.sink.add(index, grad)
        return None, None, None


class FeatureSource:
    """Rows of linear features (and positions) for a set of nodes, given the network's diffusion."""

    positions: torch.Tensor | None = None
    device: torch.device = torch.device("cpu")
    _cache: torch.Tensor | None = None
    _cache_grad: _RowGradients | None = None

    def full(self, diffusion: Diffusion | None) -> torch.Tensor:
        """Linear features of every node ``(N, E_lin)`` at the current diffusion time."""
        raise NotImplementedError

    @contextlib.contextmanager
    def cached(self, diffusion: Diffusion | None, *, train: bool) -> Iterator[None]:
        """Evaluate the features once for a whole epoch instead of once per minibatch.

        Why: a full-graph forward per step makes an epoch O(N^2) (6.6 s per step at 1e5 nodes).
        Rows are served from a detached copy; their gradient accumulates, row by row, in a
        :class:`_RowGradients` over the epoch; on leaving the block it is pushed through the graph
        once, so the diffusion time receives the summed per-step gradient and is updated once per
        epoch (the MLP still steps every minibatch).
        """
        with torch.set_grad_enabled(train and diffusion is not None):
            full = self.full(diffusion)
        # requires grad only so that rows read from it join the graph; _GatherRows sends their gradient to the sink
        self._cache = full.detach().requires_grad_(full.requires_grad)
        self._cache_grad = _RowGradients(full) if full.requires_grad else None
        try:
            yield
        finally:
            sink, self._cache, self._cache_grad = self._cache_grad, None, None
        if sink is not None and sink.used:
            full.backward(sink.grad)

    def rows(self, index: torch.Tensor, diffusion: Diffusion | None) -> torch.Tensor:
        """Features of the nodes ``index`` (from the epoch's evaluation inside :meth:`cached`)."""
        if self._cache is None:
            return self.full(diffusion)[index]
        if self._cache_grad is None:
            return self._cache[index]
        return _GatherRows.apply(self._cache, index, self._cache_grad)

    def pos(self, index: torch.Tensor) -> torch.Tensor | None:
        """Positions of the nodes ``index`` or None when positions are not used."""
        return None if self.positions is None else self.positions[index]


class StaticFeatures(FeatureSource):
    """Features with no parameters (no diffusion): stored once, rows are a lookup."""

    def __init__(self, features: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        self.features, self.positions, self.device = features, positions, features.device

    def full(self, diffusion: Diffusion | None) -> torch.Tensor:
        return self.features


class DiffusedFeatures(FeatureSource):
    """Features of the heat-diffused signal: diffuse, then iterate the directional derivatives.

    ``signal_basis (N, deg+1, s)`` is the Chebyshev basis of the signal (scalar heat kernel per
    channel), or of the local-frame field under the connection heat kernel; with ``norm_basis
    (N, deg+1)`` (scalar heat of ``|u|``) the vector heat method ``u_i(t) / |u_i(t)| * a_i(t)``
    is applied (docs/spec.md §6.3; ``b(t) = e^{-tL_rw} 1 = 1``).
    """

    def __init__(
        self,
        signal_basis: torch.Tensor,
        operator: DerivativeOperator | list[DerivativeOperator],
        *,
        order: int,
        include_self: bool,
        vec_norm: bool = False,
        norm_basis: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> None:
        self.signal_basis, self.operator = signal_basis, operator
        self.order, self.include_self, self.vec_norm = order, include_self, vec_norm
        self.norm_basis, self.positions = norm_basis, positions
        self.device = signal_basis.device

    def signal(self, diffusion: Diffusion | None) -> torch.Tensor:
        """Diffused signal ``(N, s)`` at the network's current time."""
        if diffusion is None:
            return self.signal_basis[:, 0]
        u = diffusion(self.signal_basis)
        if self.norm_basis is None:
            return u
        a = diffusion(self.norm_basis[:, :, None])
        return u / u.norm(dim=1, keepdim=True).clamp_min(1e-12) * a

    def full(self, diffusion: Diffusion | None) -> torch.Tensor:
        return derivative_stack(self.signal(diffusion), self.operator, order=self.order,
                                include_self=self.include_self, vec_norm=self.vec_norm)


def _heat_bases(geometry, u: np.ndarray, deg: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Chebyshev heat basis of the signal ``u`` (N, deg+1, s) and, with local gauges, of ``|u|``."""
    n = len(u)
    if not geometry.local_gauges:
        return chebyshev_heat_basis(geometry.laplacian, deg, u, geometry.degree).transpose(1, 0, 2), None
    # vector heat method: connection heat on u, scalar heat on |u| (docs/spec.md §6.3)
    d = u.shape[1]
    basis = chebyshev_heat_basis(geometry.laplacian, deg, u.reshape(n * d), geometry.degree)
    lap = normalized_laplacian(geometry.edge_index, geometry.edge_weight, n)[0]
    norm = chebyshev_heat_basis(lap, deg, np.linalg.norm(u, axis=1), geometry.degree)
    return basis.reshape(deg + 1, n, d).transpose(1, 0, 2), norm.T


def build_feature_source(
    geometry,
    config: FeatureConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    deg: int = DIFFUSION_DEGREE,
    **settings,
) -> FeatureSource:
    """The feature source of ``geometry`` with the feature settings ``config`` (fields of
    :class:`~marble_widgets.engine.config.FeatureConfig` may also be given as keywords).

    Why: without diffusion the features have no parameters and are computed once (float64, then
    float32); with diffusion they are evaluated at the learnable time (float32 on ``device``).
    ``inner_product_features="invariant"`` uses least-squares gradient kernels (:func:`order_kernels`).
    Features read from an on-disk store: :func:`marble_widgets.engine.feature_store.feature_source`.
    """
    config = replace(config or FeatureConfig(), **settings)
    device = torch.device(device)
    positions = (
        torch.as_tensor(geometry.pos, dtype=torch.float32, device=device) if config.include_positions else None
    )
    invariant = check_inner_product_features(config.inner_product_features) == "invariant"
    if not config.diffusion:
        feats = derivative_features(geometry, None, config.order, config.include_self, vec_norm=config.vec_norm,
                                    invariant=invariant)
        return StaticFeatures(torch.as_tensor(feats, dtype=torch.float32, device=device), positions)
    basis, norm_basis = _heat_bases(geometry, signal_in_frames(geometry), deg)

    def tensor(a):
        return None if a is None else torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    if invariant:
        operator = order_operators(geometry.n_nodes, order_kernels(geometry, config.order, True),
                                   dtype=torch.float32, device=device, differentiable=True)
    else:
        operator = DerivativeOperator(geometry, dtype=torch.float32, device=device, differentiable=True)
    return DiffusedFeatures(tensor(basis), operator, order=config.order, include_self=config.include_self,
                            vec_norm=config.vec_norm, norm_basis=tensor(norm_basis), positions=positions)
