"""The MARBLE network and the feature sources that feed it rows of derivative features.

Network (docs/spec.md §6.3, §8, §9): optional diffusion time -> linear derivative features ->
optional inner products -> MLP (Linear, BatchNorm, ReLU, Dropout per hidden layer) -> optional
L2 normalisation. The features are linear in the signal, so (docs/spec.md §11 [ours]) a *source*
precomputes what it can and hands the network the rows of a minibatch:

- :class:`StaticFeatures` - no diffusion: features computed once, ``(N, E)``.
- :class:`BasisFeatures` - diffusion, global gauge: Chebyshev basis ``(N, deg+1, E)``; rows are
  ``sum_k c_k(t) basis[rows, k]``, so ``t`` stays learnable without graph work per step.
- :class:`GraphFeatures` - diffusion when the basis is too large, with ``vec_norm`` (not linear)
  or with local gauges (vector heat method): full-graph forward per step, exact but slower.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from marble_widgets.engine.features import derivative_features, diffusion_feature_basis, feature_count
from marble_widgets.engine.laplacian import chebyshev_heat_basis, normalized_laplacian
from marble_widgets.engine import layers
from marble_widgets.engine.layers import Diffusion, InnerProductFeatures, kernel_edge_weights

#: Chebyshev degree of the heat kernel; truncation error < 2e-4 for every t <= MAX_TIME
DIFFUSION_DEGREE = 16
#: the learnable time is kept in [1e-8, MAX_TIME] so the degree-16 expansion stays accurate
MAX_TIME = 16.0
#: above this many bytes the Chebyshev feature basis is not stored (full-graph forward instead)
MAX_BASIS_BYTES = 1_000_000_000


@dataclass(frozen=True)
class NetworkSpec:
    """Every size and switch of the network, JSON-safe (saved with the weights)."""

    n_signal: int
    n_directions: int
    order: int
    include_self: bool = True
    n_positions: int = 0
    inner_product_features: bool = False
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
        s, d = self.n_signal, self.n_directions
        return s * sum(d**q for q in range(int(not self.include_self), self.order + 1))

    @property
    def n_channels(self) -> int:
        """Number of length-``s`` vectors in the linear features (inner-product channels)."""
        return self.n_linear // self.n_signal

    @property
    def n_in(self) -> int:
        """Width of the MLP input (positions in front of the (inner-product) features)."""
        core = self.n_channels if self.inner_product_features else self.n_linear
        return core + self.n_positions

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


def make_mlp(channels: list[int], *, batch_norm: bool, dropout: float, bias: bool) -> nn.Sequential:
    """MLP ``channels[0] -> ... -> channels[-1]``; hidden: Linear, BatchNorm1d, ReLU, Dropout (§9)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(channels[:-1], channels[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(channels) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MarbleNetwork(nn.Module):
    """MARBLE's encoder: linear features (+ positions) -> [inner products] -> MLP -> [L2 norm].

    Learnable: the diffusion time (``self.diffusion.t``, used by the feature source), the
    inner-product matrices ``O_j`` and the MLP. ``forward(features (B, E_lin), positions (B, n))``
    returns embeddings ``(B, out_dim)``.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        self.diffusion = Diffusion(spec.diffusion_degree) if spec.diffusion else None
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


class FeatureSource:
    """Rows of linear features (and positions) for a set of nodes, given the network's diffusion."""

    positions: torch.Tensor | None = None
    device: torch.device = torch.device("cpu")

    def rows(self, index: torch.Tensor, diffusion: Diffusion | None) -> torch.Tensor:
        raise NotImplementedError

    @contextlib.contextmanager
    def cached(self, diffusion: Diffusion | None, *, train: bool) -> Iterator[None]:
        """Within the block, rows may come from one evaluation per epoch (no-op for cheap sources)."""
        yield

    def pos(self, index: torch.Tensor) -> torch.Tensor | None:
        """Positions of the nodes ``index`` or None when positions are not used."""
        return None if self.positions is None else self.positions[index]

    def all(self, diffusion: Diffusion | None, n_nodes: int, chunk: int = 8192) -> torch.Tensor:
        """Features of every node ``(N, E_lin)``, assembled in chunks of rows."""
        parts = [
            self.rows(torch.arange(s, min(s + chunk, n_nodes), device=self.device), diffusion)
            for s in range(0, n_nodes, chunk)
        ]
        return torch.cat(parts)


class StaticFeatures(FeatureSource):
    """Features with no parameters (no diffusion): stored once, rows are a lookup."""

    def __init__(self, features: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        self.features, self.positions, self.device = features, positions, features.device

    def rows(self, index: torch.Tensor, diffusion: Diffusion | None) -> torch.Tensor:
        return self.features[index]


class BasisFeatures(FeatureSource):
    """Diffused features from a precomputed Chebyshev basis: ``sum_k c_k(t) basis[rows, k]``."""

    def __init__(self, basis: torch.Tensor, positions: torch.Tensor | None = None) -> None:
        self.basis, self.positions, self.device = basis, positions, basis.device

    def rows(self, index: torch.Tensor, diffusion: Diffusion | None) -> torch.Tensor:
        if diffusion is None:
            return self.basis[index, 0]  # T_0 term with c_0 = 1: the undiffused features
        return diffusion(self.basis[index])


class GraphFeatures(FeatureSource):
    """Full-graph features per step: diffuse the signal, then iterate the directional derivatives.

    ``signal_basis (N, deg+1, s)`` is the Chebyshev basis of the signal (scalar heat kernel per
    channel), or of the local-frame field under the connection heat kernel; with ``norm_basis
    (N, deg+1)`` (scalar heat of ``|u|``) the vector heat method ``u_i(t) / |u_i(t)| * a_i(t)``
    is applied (docs/spec.md §6.3; ``b(t) = e^{-tL_rw} 1 = 1``). ``weight (E, d')`` are the kernel weights, ``connection`` the
    ``R_ij`` (local gauges) or None.
    """

    def __init__(
        self,
        signal_basis: torch.Tensor,
        edge_index: torch.Tensor,
        weight: torch.Tensor,
        *,
        order: int,
        include_self: bool,
        vec_norm: bool = False,
        connection: torch.Tensor | None = None,
        norm_basis: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> None:
        self.signal_basis, self.edge_index, self.weight = signal_basis, edge_index, weight
        self.order, self.include_self, self.vec_norm = order, include_self, vec_norm
        self.connection, self.norm_basis, self.positions = connection, norm_basis, positions
        self.layer = layers.DirectionalDerivative()
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
        """Linear features of every node ``(N, E_lin)``."""
        return derivative_stack(
            self.signal(diffusion), self.layer, self.edge_index, self.weight, self.connection,
            order=self.order, include_self=self.include_self, vec_norm=self.vec_norm,
        )

    _cache: torch.Tensor | None = None

    @contextlib.contextmanager
    def cached(self, diffusion: Diffusion | None, *, train: bool) -> Iterator[None]:
        """Evaluate the full graph once for a whole epoch instead of once per minibatch.

        Why: a full-graph forward per step makes an epoch O(N^2) (6.6 s per step at 1e5 nodes).
        Rows are served from a detached copy whose gradient accumulates over the epoch; on leaving
        the block it is pushed through the graph once, so the diffusion time receives the summed
        per-step gradient and is updated once per epoch (the MLP still steps every minibatch).
        """
        with torch.set_grad_enabled(train and diffusion is not None):
            full = self.full(diffusion)
        self._cache = full.detach().requires_grad_(full.requires_grad)
        try:
            yield
        finally:
            leaf, self._cache = self._cache, None
        if leaf.grad is not None:
            full.backward(leaf.grad)

    def rows(self, index: torch.Tensor, diffusion: Diffusion | None) -> torch.Tensor:
        if self._cache is not None:
            return self._cache[index]
        return self.full(diffusion)[index]

    def all(self, diffusion: Diffusion | None, n_nodes: int, chunk: int = 8192) -> torch.Tensor:
        return self.full(diffusion)


def derivative_stack(
    x: torch.Tensor,
    layer: torch.nn.Module,
    edge_index: torch.Tensor,
    weight: torch.Tensor,
    connection: torch.Tensor | None,
    *,
    order: int,
    include_self: bool,
    vec_norm: bool = False,
) -> torch.Tensor:
    """``[F^(0) (if include_self), F^(1), ..., F^(p)]`` with ``F^(q) = K F^(q-1)`` (docs/spec.md §7.3).

    ``vec_norm`` L2-normalises each node's row of ``F^(q)`` after every order (zero rows stay 0).
    """
    blocks = [x] if include_self else []
    f = x
    for _ in range(order):
        f = layer(f, edge_index, weight, connection)
        if vec_norm:
            f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        blocks.append(f)
    return torch.cat(blocks, dim=1)


def signal_in_frames(geometry) -> np.ndarray:
    """The signal the derivatives act on: ambient ``(N, s)``, or ``u_i = T_i^T f_i`` with local gauges."""
    signal = np.asarray(geometry.signal, dtype=float)
    if not geometry.local_gauges:
        return signal
    return np.einsum("nad,na->nd", geometry.frames, signal)


def _graph_source(geometry, *, order, include_self, vec_norm, diffusion, deg, positions, device):
    """A :class:`GraphFeatures` for ``geometry`` (diffusion bases only when diffusion is on)."""
    n = len(geometry.pos)
    u = signal_in_frames(geometry)
    conn = None
    norm_basis = None
    if not diffusion:
        basis = u[:, None, :]
    elif geometry.local_gauges:
        # vector heat method: connection heat on u, scalar heat on |u| (docs/spec.md §6.3)
        d = u.shape[1]
        basis = chebyshev_heat_basis(geometry.laplacian, deg, u.reshape(n * d), geometry.degree)
        basis = basis.reshape(deg + 1, n, d).transpose(1, 0, 2)
        lap = normalized_laplacian(geometry.edge_index, geometry.edge_weight, n)[0]
        a = chebyshev_heat_basis(lap, deg, np.linalg.norm(u, axis=1), geometry.degree)
        norm_basis = torch.as_tensor(a.T, dtype=torch.float32, device=device)
    else:
        basis = chebyshev_heat_basis(geometry.laplacian, deg, u, geometry.degree).transpose(1, 0, 2)
    if geometry.local_gauges:
        conn = torch.as_tensor(geometry.connections, dtype=torch.float32, device=device)
    weight = kernel_edge_weights(geometry.kernels, geometry.edge_index, n, geometry.connections)
    return GraphFeatures(
        torch.as_tensor(np.ascontiguousarray(basis), dtype=torch.float32, device=device),
        torch.as_tensor(geometry.edge_index, dtype=torch.long, device=device),
        torch.as_tensor(weight, dtype=torch.float32, device=device),
        order=order, include_self=include_self, vec_norm=vec_norm, connection=conn,
        norm_basis=norm_basis, positions=positions,
    )


def build_feature_source(
    geometry,
    *,
    order: int,
    include_self: bool,
    include_positions: bool = False,
    vec_norm: bool = False,
    diffusion: bool = True,
    deg: int = DIFFUSION_DEGREE,
    device: str | torch.device = "cpu",
    max_basis_bytes: int = MAX_BASIS_BYTES,
) -> FeatureSource:
    """Pick the cheapest exact way to feed feature rows to the network (module docstring).

    Why: without diffusion the features have no parameters and are computed once; with
    diffusion in the global gauge a Chebyshev basis keeps ``t`` learnable for the price of
    ``deg + 1`` copies of the features; otherwise a full-graph forward per step.
    """
    device = torch.device(device)
    n = len(geometry.pos)
    positions = (
        torch.as_tensor(geometry.pos, dtype=torch.float32, device=device) if include_positions else None
    )
    common = dict(order=order, include_self=include_self, positions=positions)
    if not diffusion and not vec_norm:
        feats = derivative_features(geometry, geometry.signal, order, include_self)
        return StaticFeatures(torch.as_tensor(feats, dtype=torch.float32, device=device), positions)
    if not diffusion:
        src = _graph_source(geometry, vec_norm=True, diffusion=False, deg=0, device=device, **common)
        with torch.no_grad():
            return StaticFeatures(src.full(None), positions)
    n_lin = feature_count(signal_in_frames(geometry).shape[1], geometry.n_directions, order, include_self)
    if not geometry.local_gauges and not vec_norm and n * (deg + 1) * n_lin * 4 <= max_basis_bytes:
        basis = diffusion_feature_basis(geometry, geometry.signal, order, include_self, deg)
        return BasisFeatures(torch.as_tensor(basis, dtype=torch.float32, device=device), positions)
    return _graph_source(geometry, vec_norm=vec_norm, diffusion=True, deg=deg, device=device, **common)
