"""Seeded toy systems returning flow-field Datasets (docs/spec.md §15.2), built with ``make_flow_field``.

Toys have known answers (analytic vectors, known geometry), so the engine and the analysis can be
tested against them. Every random draw takes a ``seed`` and nothing here mutates its inputs.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp
from scipy.stats import special_ortho_group

from marble_widgets.data.containers import combine_flow_fields, make_flow_field
from marble_widgets.data.errors import MarbleDataError

PLANAR_DIMS = ("x", "y")
SPATIAL_DIMS = ("x", "y", "z")
DEFAULT_T_SAMPLES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
DEFAULT_PLANAR_FIELDS = ("constant_neg", "constant_pos", "vortex_left", "vortex_right")


# ----------------------------------------------------------------------------------- van der Pol
def van_der_pol_velocity(x: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
    """Analytic van der Pol vector field ``(y, mu (1 - x^2) y - x)`` at points ``x`` (n, 2)."""
    x = np.asarray(x, dtype=np.float64)
    px, py = x[..., 0], x[..., 1]
    return np.stack([py, mu * (1.0 - px * px) * py - px], axis=-1)


def _integrate_van_der_pol(starts: np.ndarray, mu: np.ndarray, t_samples: np.ndarray, escape: float) -> np.ndarray:
    """Integrate all trajectories at once; returns (n_traj, n_t, 2) samples, NaN where a trajectory escaped.

    Outside the box ``(-escape, escape)^2`` the field is smoothly switched off (so solutions that blow up
    in finite time, as for mu < 0, stay finite) and an extra state accumulates the time spent there;
    any sample taken after a trajectory entered that zone is set to NaN.
    """
    n = starts.shape[0]

    def rhs(_t: float, state: np.ndarray) -> np.ndarray:
        px, py = state[:n], state[n : 2 * n]
        over = np.clip((np.maximum(np.abs(px), np.abs(py)) - escape) / escape, 0.0, None)
        damp = np.exp(-8.0 * over**2)
        dx, dy = py, mu * (1.0 - px * px) * py - px
        return np.concatenate([dx * damp, dy * damp, over**2])

    state0 = np.concatenate([starts[:, 0], starts[:, 1], np.zeros(n)])
    sol = solve_ivp(rhs, (0.0, float(t_samples[-1])), state0, t_eval=t_samples, rtol=1e-6, atol=1e-9)
    if not sol.success:
        raise MarbleDataError(f"van_der_pol: the ODE solver failed ({sol.message}); try fewer or smaller mus.")
    out = np.stack([sol.y[:n], sol.y[n : 2 * n]], axis=-1)
    out[sol.y[2 * n :] > 0] = np.nan
    return out


def _lift(x: np.ndarray, alpha: float) -> np.ndarray:
    """Lift planar points (n, 2) to the paraboloid ``z = -(alpha x)^2 - (alpha y)^2``: (n, 3)."""
    z = -((alpha * x[:, 0]) ** 2) - (alpha * x[:, 1]) ** 2
    return np.column_stack([x, z])


def _lift_vectors(x: np.ndarray, v: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Lifted positions and vectors ``lift(x + v) - lift(x)`` (the lifted end point minus the lifted start)."""
    start = _lift(x, alpha)
    return start, _lift(x + v, alpha) - start


def _check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float, raising unless it is a finite positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}.")
    if not np.isfinite(value) or value <= 0:
        raise MarbleDataError(f"{name} must be a finite positive number; got {value!r}.")
    return float(value)


def _check_count(name: str, value: Any) -> int:
    """Return ``value`` as an int, raising unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise MarbleDataError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def _check_t_samples(t_samples: Sequence[float] | np.ndarray) -> np.ndarray:
    """Sample times as a float array; raise unless non-negative, strictly increasing and not all zero."""
    t = np.asarray(t_samples, dtype=np.float64).ravel()
    if t.size == 0 or np.any(t < 0) or np.any(np.diff(t) <= 0) or t[-1] <= 0:
        raise MarbleDataError(
            f"t_samples must be non-negative, strictly increasing times with a positive last one; got {t_samples!r}."
        )
    return t


def van_der_pol(
    mus: Sequence[float] | np.ndarray | None = None,
    *,
    n_initial: int = 100,
    t_samples: Sequence[float] | np.ndarray = DEFAULT_T_SAMPLES,
    lift_alpha: float | None = 0.05,
    bound: float = 5.0,
    seed: int = 0,
) -> xr.Dataset:
    """Van der Pol family ``dx = y, dy = mu (1 - x^2) y - x`` sampled along trajectories (docs/spec.md §15.2, paper Fig. 2).

    The canonical MARBLE toy: a Hopf bifurcation at mu = 0 that embeddings must order by mu.
    For each mu (default ``np.linspace(-1, 1, 40)``) ``n_initial`` initial conditions are drawn
    uniformly in [-3, 3]^2 (one generator seeded by ``seed``, mu by mu), integrated with
    ``scipy.integrate.solve_ivp`` (RK45, rtol 1e-6, atol 1e-9) and sampled at ``t_samples``. Vectors
    are the analytic velocities at the sampled positions. Points with any coordinate outside
    ``(-bound, bound)`` are dropped, and so is every sample of a trajectory taken after it left
    ``(-2 bound, 2 bound)^2`` (it has escaped; there the field is smoothly switched off so that
    finite-time blow-ups stay finite). With ``lift_alpha`` set, positions are lifted to
    ``z = -(alpha x)^2 - (alpha y)^2`` and each vector becomes ``lift(x + v) - lift(x)`` (lifted end
    point minus lifted start, end = start + velocity; its x, y components stay the velocity);
    ``lift_alpha=None`` keeps the planar field.

    Returns
    -------
    xr.Dataset
        Flow field with ``x``/``v`` (sample, dim) over dims x, y(, z); ``condition`` = f"mu={mu:+.3f}",
        numeric ``mu`` coord, ``trial`` = initial-condition index, ``time`` = sample time.
    """
    mus = np.linspace(-1.0, 1.0, 40) if mus is None else np.asarray(mus, dtype=np.float64).ravel()
    if mus.size == 0 or not np.all(np.isfinite(mus)):
        raise MarbleDataError(f"mus must be a non-empty sequence of finite numbers; got {mus!r}.")
    n_initial = _check_count("n_initial", n_initial)
    bound = _check_positive("bound", bound)
    t = _check_t_samples(t_samples)
    rng = np.random.default_rng(seed)
    starts = np.concatenate([rng.uniform(-3.0, 3.0, size=(n_initial, 2)) for _ in mus])
    mu_traj = np.repeat(mus, n_initial)
    samples = _integrate_van_der_pol(starts, mu_traj, t, escape=2.0 * bound)  # (traj, t, 2)
    shape = samples.shape[:2]
    mu_s = np.broadcast_to(mu_traj[:, None], shape).ravel()
    trial = np.broadcast_to(np.tile(np.arange(n_initial), mus.size)[:, None], shape).ravel()
    time = np.broadcast_to(t[None, :], shape).ravel()
    pos = samples.reshape(-1, 2)
    keep = np.all(np.abs(pos) < bound, axis=1)  # NaN compares False, so escaped samples go too
    pos, mu_s, trial, time = pos[keep], mu_s[keep], trial[keep], time[keep]
    vel = van_der_pol_velocity(pos, mu_s)
    dims: Sequence[str] = PLANAR_DIMS
    attrs: dict[str, Any] = {"source": "van_der_pol", "difference": "analytic", "bound": bound, "seed": int(seed)}
    if lift_alpha is not None:
        alpha = _check_positive("lift_alpha", lift_alpha)
        pos, vel = _lift_vectors(pos, vel, alpha)
        dims, attrs["lift_alpha"] = SPATIAL_DIMS, alpha
    return make_flow_field(
        pos, vel, condition=np.array([f"mu={m:+.3f}" for m in mu_s]), trial=trial, time=time,
        dim_names=dims, sample_coords={"mu": mu_s}, attrs=attrs,
    )


# -------------------------------------------------------------------------------- planar fields
def _planar_points(n: int, seed: int, points: np.ndarray | None, d: int = 2) -> np.ndarray:
    """``n`` points uniform in [-1, 1]^d (seeded), or a float copy of the given ``points`` (m, d)."""
    if points is None:
        return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(_check_count("n", n), d))
    pts = np.array(points, dtype=np.float64, copy=True)
    if pts.ndim != 2 or pts.shape[1] != d or pts.shape[0] == 0:
        raise MarbleDataError(f"points must be a non-empty (n, {d}) array; got shape {np.shape(points)}.")
    return pts


def _single_field(x: np.ndarray, v: np.ndarray, name: str, attrs: Mapping[str, Any]) -> xr.Dataset:
    """One-condition flow field; ``time`` is the index within the condition, ``trial`` 0."""
    n, d = x.shape
    dims = PLANAR_DIMS if d == 2 else SPATIAL_DIMS if d == 3 else None
    return make_flow_field(
        x, v, condition=np.full(n, name), trial=np.zeros(n, dtype=np.int64), time=np.arange(n, dtype=np.float64),
        dim_names=dims, attrs={"source": name, "difference": "analytic", **attrs},
    )


def linear_field(
    A: np.ndarray, b: np.ndarray | None = None, n: int = 512, seed: int = 0, *, points: np.ndarray | None = None,
    name: str = "linear",
) -> xr.Dataset:
    """Linear field ``v = A x + b`` on ``n`` seeded points uniform in [-1, 1]^d (or on given ``points``).

    Linear fields have constant derivatives, the simplest analytic check of derivative features.
    ``A`` is (d, d); the vectors are computed as ``x @ A.T + b``.
    """
    A = np.array(A, dtype=np.float64, copy=True)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise MarbleDataError(f"A must be a square (d, d) matrix; got shape {A.shape}.")
    d = A.shape[0]
    b = np.zeros(d) if b is None else np.array(b, dtype=np.float64, copy=True)
    if b.shape != (d,):
        raise MarbleDataError(f"b must have shape ({d},) to match A; got {b.shape}.")
    x = _planar_points(n, seed, points, d)
    return _single_field(x, x @ A.T + b, name, {"seed": int(seed)})


def rotation_field(omega: float = 1.0, n: int = 512, seed: int = 0, *, points: np.ndarray | None = None) -> xr.Dataset:
    """Rigid rotation ``v = omega (-y, x)`` on seeded points in [-1, 1]^2 (a linear field, curl 2 omega)."""
    return linear_field([[0.0, -omega], [omega, 0.0]], n=n, seed=seed, points=points, name="rotation")


def saddle_field(n: int = 512, seed: int = 0, *, points: np.ndarray | None = None) -> xr.Dataset:
    """Saddle ``v = (x, -y)`` on seeded points in [-1, 1]^2 (a linear field, zero curl and divergence)."""
    return linear_field([[1.0, 0.0], [0.0, -1.0]], n=n, seed=seed, points=points, name="saddle")


def constant_field(
    c: Sequence[float] = (1.0, 1.0), n: int = 512, seed: int = 0, *, points: np.ndarray | None = None,
    name: str | None = None,
) -> xr.Dataset:
    """Constant field ``v = c`` on seeded points in [-1, 1]^2 (docs/spec.md §15.2: c = (-1, -1) and (1, 1))."""
    c = np.array(c, dtype=np.float64, copy=True)
    if c.shape != (2,):
        raise MarbleDataError(f"c must be a 2-vector (cx, cy); got shape {c.shape}.")
    x = _planar_points(n, seed, points)
    label = name or f"constant({c[0]:g},{c[1]:g})"
    return _single_field(x, np.broadcast_to(c, x.shape).copy(), label, {"seed": int(seed)})


def vortex_field(
    centre: float | Sequence[float] = 0.0, n: int = 512, seed: int = 0, *, points: np.ndarray | None = None,
    name: str | None = None,
) -> xr.Dataset:
    """Vortex ``(y - cy, -(x - cx)) / sqrt((x - cx)^2 + (y - cy)^2 + 0.1)`` on seeded points in [-1, 1]^2.

    Spec 15.2's vortices are centred at x = -1 and x = +1 (a float ``centre`` is cx, with cy = 0).
    """
    c = np.atleast_1d(np.asarray(centre, dtype=np.float64))
    if c.shape not in ((1,), (2,)):
        raise MarbleDataError(f"centre must be a number cx or a pair (cx, cy); got {centre!r}.")
    cx, cy = float(c[0]), float(c[1]) if c.size == 2 else 0.0
    x = _planar_points(n, seed, points)
    dx, dy = x[:, 0] - cx, x[:, 1] - cy
    v = np.column_stack([dy, -dx]) / np.sqrt(dx**2 + dy**2 + 0.1)[:, None]
    return _single_field(x, v, name or f"vortex({cx:g},{cy:g})", {"seed": int(seed)})


_PLANAR_REGISTRY: dict[str, Callable[..., xr.Dataset]] = {
    "constant_neg": lambda **kw: constant_field((-1.0, -1.0), name="constant_neg", **kw),
    "constant_pos": lambda **kw: constant_field((1.0, 1.0), name="constant_pos", **kw),
    "vortex_left": lambda **kw: vortex_field(-1.0, name="vortex_left", **kw),
    "vortex_right": lambda **kw: vortex_field(1.0, name="vortex_right", **kw),
    "rotation": lambda **kw: rotation_field(**kw),
    "saddle": lambda **kw: saddle_field(**kw),
}


#: the same function as :func:`marble_widgets.data.flow.combine_flow_fields` (one stacking rule); kept as
#: the public name of ``marble_widgets.datasets``
concat_fields = combine_flow_fields


def planar_fields(
    fields: Sequence[str] | Mapping[str, xr.Dataset] = DEFAULT_PLANAR_FIELDS, *, n: int = 512, seed: int = 0,
) -> xr.Dataset:
    """Several planar fields in one Dataset, conditions named after them (docs/spec.md §15.2's flat-field case).

    Names are from {"constant_neg", "constant_pos", "vortex_left", "vortex_right", "rotation", "saddle"};
    field ``i`` gets its own ``n`` points drawn with seed ``seed + i`` (the spec's seeds 0-3). A mapping
    name -> flow field is stacked as given. Stacked by :func:`combine_flow_fields` with ``dim="field"``
    (a one-condition field's condition is its name).
    """
    if isinstance(fields, Mapping):
        return combine_flow_fields(fields, dim="field")
    if isinstance(fields, str):
        fields = [fields]
    unknown = [f for f in fields if f not in _PLANAR_REGISTRY]
    if unknown:
        raise MarbleDataError(f"unknown planar field(s) {unknown}; choose from {sorted(_PLANAR_REGISTRY)}.")
    return combine_flow_fields({name: _PLANAR_REGISTRY[name](n=n, seed=seed + i) for i, name in enumerate(fields)},
                               dim="field")


def lattice(h: float = 0.1, extent: float = 2.0) -> np.ndarray:
    """Regular square lattice with spacing ``h`` covering [-extent/2, extent/2]^2, as (n, 2) points.

    Lattices make finite-difference derivatives exact for linear fields; pass them as ``points=``
    to the planar fields. ``extent / h`` must be a whole number.
    """
    h, extent = _check_positive("h", h), _check_positive("extent", extent)
    m = int(round(extent / h))
    if m < 1 or abs(m * h - extent) > 1e-9 * extent:
        raise MarbleDataError(f"extent / h must be a whole number; got extent={extent!r}, h={h!r}.")
    axis = (np.arange(m + 1) - m / 2.0) * h
    gx, gy = np.meshgrid(axis, axis, indexing="xy")
    return np.column_stack([gx.ravel(), gy.ravel()])


# ------------------------------------------------------------------------ curved manifolds in R^3
def _unit_sphere_points(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniform on the unit sphere S^2 (normalised Gaussian draws)."""
    g = rng.standard_normal((n, 3))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def sphere_field(n: int = 2000, kind: str = "rotation", seed: int = 0) -> xr.Dataset:
    """Tangent vector field on ``n`` seeded points uniform on the unit sphere S^2.

    A closed curved 2-manifold in R^3 to test local gauges. ``kind="rotation"`` is the rigid rotation
    about the z axis, ``v = (-y, x, 0)``; ``"random_tangent"`` projects standard-normal vectors onto
    each tangent plane, ``v = g - <g, x> x``.
    """
    n = _check_count("n", n)
    rng = np.random.default_rng(seed)
    x = _unit_sphere_points(n, rng)
    if kind == "rotation":
        v = np.column_stack([-x[:, 1], x[:, 0], np.zeros(n)])
    elif kind == "random_tangent":
        g = rng.standard_normal((n, 3))
        v = g - np.sum(g * x, axis=1, keepdims=True) * x
        v -= np.sum(v * x, axis=1, keepdims=True) * x  # second pass removes round-off
    else:
        raise MarbleDataError(f"kind must be 'rotation' or 'random_tangent'; got {kind!r}.")
    return _single_field(x, v, f"sphere_{kind}", {"seed": int(seed), "kind": kind})


def paraboloid_field(
    field: str | xr.Dataset = "vortex_left", alpha: float = 0.05, *, n: int = 512, seed: int = 0,
) -> xr.Dataset:
    """A planar field lifted to the paraboloid ``z = -(alpha x)^2 - (alpha y)^2`` (docs/spec.md §15.2's curved surface).

    Tests that the embedding of a field survives bending the surface it lives on. ``field`` is a name of
    :func:`planar_fields` or a planar flow-field Dataset. Lifted vectors ``lift(x + v) - lift(x)`` are
    rescaled by one global factor ``||V_flat||_F / ||V_lifted||_F`` (not per vector), so the total
    vector magnitude equals the flat field's.
    """
    alpha = _check_positive("alpha", alpha)
    flat = planar_fields([field], n=n, seed=seed) if isinstance(field, str) else field
    if not isinstance(flat, xr.Dataset) or flat.sizes.get("dim") != 2:
        raise MarbleDataError(
            f"field must be a planar field name or a flow-field Dataset with 2 dims; got {type(field).__name__}."
        )
    x, v = flat["x"].values, flat["v"].values
    pos, lifted = _lift_vectors(x, v, alpha)
    norm = np.linalg.norm(lifted)
    scale = np.linalg.norm(v) / norm if norm > 0 else 1.0
    coords, variables = _sample_extras(flat)
    return make_flow_field(
        pos, lifted * scale, condition=flat["condition"].values, trial=flat["trial"].values,
        time=flat["time"].values, dim_names=SPATIAL_DIMS, sample_coords=coords, sample_vars=variables,
        attrs={**flat.attrs, "lift_alpha": alpha, "lift_scale": float(scale)},
    )


def circle_field(n: int = 200, seed: int = 0, radius: float = 1.0) -> xr.Dataset:
    """Unit-speed rotation along a circle of ``radius`` in the z = 0 plane of R^3 (a 1-D manifold).

    Checks that the engine finds manifold dimension 1; angles are uniform (seeded), vectors tangent.
    """
    n, radius = _check_count("n", n), _check_positive("radius", radius)
    theta = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, n)
    x = radius * np.column_stack([np.cos(theta), np.sin(theta), np.zeros(n)])
    v = np.column_stack([-np.sin(theta), np.cos(theta), np.zeros(n)])
    return _single_field(x, v, "circle", {"seed": int(seed), "radius": radius})


# ----------------------------------------------------------------------------- rotated copies
def random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform (Haar) random rotation matrix in SO(d), drawn from ``rng`` by ``scipy.stats.special_ortho_group``."""
    return np.asarray(special_ortho_group.rvs(_check_count("d", d), random_state=rng), dtype=np.float64).reshape(d, d)


def _sample_extras(ds: xr.Dataset) -> tuple[dict[str, np.ndarray], dict[str, xr.DataArray]]:
    """Extra sample coords and sample variables (everything besides the schema's own) of a flow field."""
    own = {"sample", "condition", "trial", "time", "dim"}
    coords = {k: ds[k].values for k in ds.coords if k not in own and ds[k].dims == ("sample",)}
    variables = {k: ds[k] for k in ds.data_vars if k not in ("x", "v") and "sample" in ds[k].dims}
    return coords, variables


def rotated_copies(
    flow_field: xr.Dataset, n_copies: int = 3, seed: int = 0, *, include_original: bool = True,
) -> xr.Dataset:
    """Append ``n_copies`` randomly rotated copies (positions and vectors) of a flow field as extra conditions.

    Rotations change the embedding but not the intrinsic dynamics, so this separates embedding-aware
    from embedding-agnostic comparisons. Copy ``k`` (1-based) has conditions ``f"{condition}|rot{k}"``
    and ``rotation`` coord k (0 = the original); its rotation matrix is in attrs ``rotation_k``.
    """
    n_copies = _check_count("n_copies", n_copies)
    rng = np.random.default_rng(seed)
    x, v = flow_field["x"].values, flow_field["v"].values
    cond = flow_field["condition"].values.astype(str)
    coords, variables = _sample_extras(flow_field)
    mats = [np.eye(x.shape[1])] + [random_rotation(x.shape[1], rng) for _ in range(n_copies)]
    copies = list(range(0 if include_original else 1, n_copies + 1))
    labels = [cond if k == 0 else np.char.add(cond, f"|rot{k}") for k in copies]
    n = x.shape[0]
    extra_vars = {k: xr.concat([da] * len(copies), dim="sample") for k, da in variables.items()}
    attrs = {**flow_field.attrs, "rotation_seed": int(seed)}
    attrs.update({f"rotation_{k}": str(mats[k].round(12).tolist()) for k in copies if k > 0})
    return make_flow_field(
        np.concatenate([x @ mats[k].T for k in copies]), np.concatenate([v @ mats[k].T for k in copies]),
        condition=np.concatenate(labels), trial=np.tile(flow_field["trial"].values, len(copies)),
        time=np.tile(flow_field["time"].values, len(copies)), dim_names=list(flow_field["dim"].values),
        sample_coords={**{k: np.tile(c, len(copies)) for k, c in coords.items()}, "rotation": np.repeat(copies, n)},
        sample_vars=extra_vars, attrs=attrs,
    )
