"""Low-rank RNNs that solve delayed match-to-sample, simulated under gain modulation (paper Fig. 3).

Why: MARBLE's recurrent-network study compares the flow fields of networks whose input gain is
scaled from 1 to 0; the shipped networks (``datasets/files/rnn``, trained by
``scripts/train_rnns.py``) are simulated here with numpy only (the data room never imports torch).

Dynamics (Euler, dt/tau = alpha = 0.2, 20-ms steps), N tanh units, rank-R connectivity ``m n^T / N``::

    h[t+1] = (1 - alpha) h[t] + alpha (m n^T tanh(h[t]) / N + W_in^T u[t]) + noise_std xi[t],   xi ~ N(0, I_N)
    z[t]   = w_out . tanh(h[t+1]) / N                                       (readout after step t)

Trial (issue 16): fixation 0-0.5 s, stimulus 1 0.5-1.0 s, delay to 4.0 s, stimulus 2 4.0-4.5 s,
decision to 5.5 s; stimulus A drives input channel 0, B channel 1. Starting from h[0] = 0, the noise-free
state stays in S = span(m, W_in) (R + 2 dimensions); the rest of h is independent isotropic
Ornstein-Uhlenbeck noise, which adds the same variance to every direction orthogonal to S. The
principal components of the states therefore lie in S, and they are computed there exactly from the
S-coordinates ``Q^T h`` (Q an orthonormal basis of S); total variance is accumulated in R^N.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from marble_widgets.data.bundled import data_dir
from marble_widgets.data.containers import make_flow_field
from marble_widgets.data.errors import MarbleDataError

DT = 0.02
#: (name, start s, stop s) of the test trial's epochs; stimuli in the two ``stimulus`` epochs
EPOCHS = (("fixation", 0.0, 0.5), ("stimulus1", 0.5, 1.0), ("delay", 1.0, 4.0), ("stimulus2", 4.0, 4.5),
          ("decision", 4.5, 5.5))
STIMULATED_EPOCHS = ("stimulus1", "stimulus2")
STIMULI = {"A": 0, "B": 1}
#: the paper drops the first 15 steps (300 ms) of every trajectory: the transient from h = 0
DROP_STEPS = 15
N_GAINS = 20


@dataclass(frozen=True)
class LowRankRNN:
    """A shipped rank-R tanh network: loadings ``m``, ``n`` (N, R), inputs ``wi`` (2, N), readout ``wo`` (N,)."""

    name: str
    m: np.ndarray
    n: np.ndarray
    wi: np.ndarray
    wo: np.ndarray
    alpha: float
    noise_std: float
    kind: str
    accuracy_gain1: float

    @property
    def n_units(self) -> int:
        return int(self.m.shape[0])

    def step(self, h: np.ndarray, u: np.ndarray, xi: np.ndarray, noise_std: float) -> np.ndarray:
        """One Euler step of the module's equation for states ``h`` (B, N), inputs ``u`` (B, 2), noise ``xi`` (B, N)."""
        return self._advance(h, np.tanh(h), u, xi, noise_std)

    def _advance(self, h: np.ndarray, r: np.ndarray, u: np.ndarray, xi: np.ndarray, noise_std: float) -> np.ndarray:
        """:meth:`step` given the rates ``r = tanh(h)`` (computed once per step when simulating)."""
        rec = (r @ self.n) @ self.m.T / self.n_units
        return (1.0 - self.alpha) * h + self.alpha * (rec + u @ self.wi) + noise_std * xi

    def readout(self, h: np.ndarray) -> np.ndarray:
        """Network output ``w_out . tanh(h) / N`` of states (..., N)."""
        return np.tanh(h) @ self.wo / self.n_units

    def subspace(self) -> np.ndarray:
        """Orthonormal basis Q (N, R + 2) of span(m, W_in), where the noise-free state lives."""
        q, _ = np.linalg.qr(np.column_stack([self.m, self.wi.T]))
        return q

    def simulate(self, inputs: np.ndarray, noise_std: float, rng: np.random.Generator,
                 basis: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Simulate B trials from h[0] = 0 with ``inputs`` (B, T, 2); noise ``xi[t]`` is drawn (B, N) per step.

        Returns the states h[0..T] (B, T + 1, N), or ``h @ basis`` when a basis is given (memory stays
        O(B T k)); the readout z (B, T) after every step; and the sums of h and ||h||^2 over steps
        0..T-1 and trials (``sum``, ``sumsq``) per step, for the total variance in R^N.
        """
        n_trials, n_steps, _ = inputs.shape
        h = np.zeros((n_trials, self.n_units))
        width = self.n_units if basis is None else basis.shape[1]
        states = np.empty((n_trials, n_steps + 1, width))
        z = np.empty((n_trials, n_steps))
        sums = np.empty((n_steps, self.n_units))
        sumsq = np.empty(n_steps)
        states[:, 0] = h if basis is None else h @ basis
        r = np.tanh(h)
        for t in range(n_steps):
            sums[t], sumsq[t] = h.sum(axis=0), float(np.sum(h * h))
            h = self._advance(h, r, inputs[:, t], rng.standard_normal(h.shape), noise_std)
            r = np.tanh(h)
            states[:, t + 1] = h if basis is None else h @ basis
            z[:, t] = r @ self.wo / self.n_units
        return states, z, {"sum": sums, "sumsq": sumsq}


# ------------------------------------------------------------------------------ shipped networks
def _rnn_dir():
    return data_dir() / "rnn"


def available_rnns() -> list[str]:
    """Names of the shipped networks (``resampled0a``, ``resampled0b``, ``trained0``, ``trained1``), sorted."""
    return sorted(p.stem for p in _rnn_dir().glob("*.npz"))


def load_rnn(name: str) -> LowRankRNN:
    """Load a shipped network by name (see :func:`available_rnns` and ``files/rnn/README.md``)."""
    names = available_rnns()
    if not isinstance(name, str) or name not in names:
        raise MarbleDataError(f"unknown network {name!r}; the shipped networks are {names}.")
    with np.load(_rnn_dir() / f"{name}.npz") as f:
        return LowRankRNN(
            name=name, m=f["m"].astype(np.float64), n=f["n"].astype(np.float64), wi=f["wi"].astype(np.float64),
            wo=f["wo"].astype(np.float64), alpha=float(f["alpha"]), noise_std=float(f["noise_std"]),
            kind=str(f["kind"]), accuracy_gain1=float(f["accuracy_gain1"]),
        )


# ------------------------------------------------------------------------------------- the trial
def epoch_of_step() -> np.ndarray:
    """Epoch name of every input step of the test trial (T = 275 steps of 20 ms)."""
    n_steps = int(round(EPOCHS[-1][2] / DT))
    t = (np.arange(n_steps) + 0.5) * DT
    labels = np.empty(n_steps, dtype=object)
    for name, start, stop in EPOCHS:
        labels[(t >= start) & (t < stop)] = name
    return labels.astype(str)


def dms_input(stim1: str = "A", stim2: str = "A", gain: float = 1.0) -> np.ndarray:
    """Input (T, 2) of one test trial: ``gain`` on the stimulus' channel during each stimulus epoch."""
    for arg, value in (("stim1", stim1), ("stim2", stim2)):
        if value not in STIMULI:
            raise MarbleDataError(f"{arg} must be 'A' or 'B'; got {value!r}.")
    if not np.isfinite(gain):
        raise MarbleDataError(f"gain must be a finite number; got {gain!r}.")
    epochs = epoch_of_step()
    u = np.zeros((epochs.size, 2))
    u[epochs == "stimulus1", STIMULI[stim1]] = gain
    u[epochs == "stimulus2", STIMULI[stim2]] = gain
    return u


# ------------------------------------------------------------------------------------ checks
def _networks(networks: str | Sequence[str]) -> list[str]:
    names = available_rnns()
    if isinstance(networks, str):
        networks = names if networks == "all" else [networks]
    if not isinstance(networks, Sequence) or not all(isinstance(n, str) for n in networks):
        raise MarbleDataError(f"networks must be 'all', a name or a list of names from {names}; got {networks!r}.")
    networks = list(networks)
    bad = [n for n in networks if n not in names]
    if not networks or bad or len(set(networks)) != len(networks):
        raise MarbleDataError(
            f"networks must be 'all', one name or distinct names from {names}; got {networks!r}."
        )
    return networks


def _gains(gains: Sequence[float] | np.ndarray | None) -> np.ndarray:
    try:
        g = np.linspace(1.0, 0.0, N_GAINS) if gains is None else np.asarray(gains, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise MarbleDataError(f"gains must be a non-empty sequence of finite numbers >= 0; got {gains!r}.") from None
    if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g < 0):
        raise MarbleDataError(f"gains must be a non-empty sequence of finite numbers >= 0; got {gains!r}.")
    if len({f"{x:.3f}" for x in g}) != g.size:
        raise MarbleDataError(f"gains must differ by at least 0.001 (they name the conditions); got {gains!r}.")
    return g


def _count(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (
            high is not None and value > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise MarbleDataError(f"{name} must be an integer {span}; got {value!r}.")
    return int(value)


def _noise(noise_std, default: float) -> float:
    if noise_std is None:
        return default
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float, np.integer, np.floating)) or not (
            np.isfinite(noise_std) and noise_std >= 0):
        raise MarbleDataError(f"noise_std must be a finite number >= 0 or None; got {noise_std!r}.")
    return float(noise_std)


# ---------------------------------------------------------------------------------- simulation
def _rng(seed: int, name: str) -> np.random.Generator:
    """Noise generator of one network: depends on the seed and the network's name only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]))


def _pca(coords: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, components (k, n_components) and variances of points (M, k), signs fixed (largest loading > 0)."""
    mean = coords.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(coords - mean, rowvar=False, bias=True))
    top = np.argsort(evals)[::-1][:n_components]
    comps = evecs[:, top]
    comps *= np.sign(comps[np.argmax(np.abs(comps), axis=0), np.arange(n_components)])
    return mean, comps, evals[top]


def _simulate_network(net: LowRankRNN, gains: np.ndarray, n_traj: int, noise_std: float, seed: int,
                      n_components: int, drop: int) -> dict[str, np.ndarray]:
    """All gains' A-A trials of one network: PC trajectories (G, n_traj, T + 1, k), outputs and variances."""
    u = np.stack([dms_input("A", "A", g) for g in gains])  # (G, T, 2)
    inputs = np.repeat(u, n_traj, axis=0)
    basis = net.subspace()
    states, z, moments = net.simulate(inputs, noise_std, _rng(seed, net.name), basis=basis)
    n_steps = u.shape[1]
    kept = states[:, drop:n_steps].reshape(-1, basis.shape[1])
    mean, comps, var = _pca(kept, n_components)
    # total variance in R^N of the same states: E||h||^2 - ||E h||^2
    count = kept.shape[0]
    mean_full = moments["sum"][drop:].sum(axis=0) / count
    total = moments["sumsq"][drop:].sum() / count - float(mean_full @ mean_full)
    pcs = ((states - mean) @ comps).reshape(gains.size, n_traj, n_steps + 1, n_components)
    decision = epoch_of_step() == "decision"
    mean_out = z[:, decision].mean(axis=1).reshape(gains.size, n_traj)
    explained = var / total if total > 0 else np.zeros_like(var)  # no noise and no input: states never move
    return {"pcs": pcs, "decision_output": mean_out, "explained": explained}


def _flow_parts(name: str, sim: dict[str, np.ndarray], gains: np.ndarray, drop: int, stimulated: bool):
    """Positions, vectors and labels of one network's stimulated or unstimulated samples, gain by gain."""
    epochs = epoch_of_step()
    steps = np.arange(drop, epochs.size)
    steps = steps[np.isin(epochs[steps], STIMULATED_EPOCHS) == stimulated]
    pcs = sim["pcs"]
    n_gain, n_traj = pcs.shape[:2]
    x = pcs[:, :, steps].reshape(-1, pcs.shape[-1])
    v = (pcs[:, :, steps + 1] - pcs[:, :, steps]).reshape(-1, pcs.shape[-1])
    shape = (n_gain, n_traj, steps.size)
    gain = np.broadcast_to(gains[:, None, None], shape).ravel()
    kind = "stimulated" if stimulated else "unstimulated"
    labels = np.array([f"{name}|g={g:.3f}|{kind}" for g in gains])
    idx = np.broadcast_to(np.arange(n_gain)[:, None, None], shape).ravel()
    trial = (idx * n_traj + np.broadcast_to(np.arange(n_traj)[None, :, None], shape).ravel())
    return {"x": x, "v": v, "condition": labels[idx], "trial": trial,
            "time": np.broadcast_to(steps * DT, shape).ravel(), "gain": gain,
            "epoch": np.broadcast_to(epochs[steps], shape).ravel(),
            "stimulated": np.full(x.shape[0], stimulated), "network": np.full(x.shape[0], name)}


def rnn_gain_modulation(
    networks: str | Sequence[str] = "all",
    *,
    gains: Sequence[float] | np.ndarray | None = None,
    n_trajectories: int = 200,
    noise_std: float | None = None,
    n_components: int = 3,
    drop_steps: int = DROP_STEPS,
    seed: int = 0,
) -> xr.Dataset:
    """Flow fields of low-rank RNNs on delayed match-to-sample under input-gain modulation (paper Fig. 3).

    Why: MARBLE should order the stimulated dynamics by gain, identically for every network. For each
    network and each gain (default 20 gains from 1 to 0) ``n_trajectories`` noisy A-A trials (channel 0
    = gain during both stimuli) are simulated (noise ``noise_std``, default the network's training noise
    0.05), the first ``drop_steps`` steps dropped, and the states projected to the network's own
    ``n_components`` principal components (fitted on all its kept states). Samples are positions x[t]
    and forward differences x[t+1] - x[t], where step t's input decides its epoch, so no vector spans two
    epochs; per gain there is one *stimulated* condition (both stimulus epochs) and one *unstimulated*
    condition (fixation, delay, decision). Memory: about 170 MB per network with 200 trajectories.

    Returns
    -------
    xr.Dataset
        Flow field (dims PC1..PCk) with conditions ``f"{network}|g={gain:.3f}|stimulated"`` (or
        ``unstimulated``), ordered network, stimulated-then-unstimulated, gain; sample coords ``network``,
        ``gain``, ``stimulated`` (bool), ``epoch``, ``trial`` (gain index * n_trajectories + trajectory),
        ``time`` (s from trial start). Also ``accuracy`` (rnn, rnn_gain): fraction of trials whose mean
        decision-window output is > 0 (a match, the right answer); ``decision_output`` (rnn, rnn_gain,
        rnn_trajectory); ``explained_variance_ratio`` (rnn, dim) of each network's PCs in R^N.
    """
    names = _networks(networks)
    gains = _gains(gains)
    n_traj = _count("n_trajectories", n_trajectories, 1)
    n_comp = _count("n_components", n_components, 1, 4)
    drop = _count("drop_steps", drop_steps, 0, int(round(EPOCHS[0][2] / DT)) - 1)
    _count("seed", seed, 0)
    parts, outputs, explained = [], [], []
    for name in names:
        net = load_rnn(name)
        sim = _simulate_network(net, gains, n_traj, _noise(noise_std, net.noise_std), seed, n_comp, drop)
        parts += [_flow_parts(name, sim, gains, drop, stimulated) for stimulated in (True, False)]
        outputs.append(sim["decision_output"])
        explained.append(sim["explained"])
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    ds = make_flow_field(
        cat["x"], cat["v"], condition=cat["condition"], trial=cat["trial"], time=cat["time"],
        dim_names=[f"PC{i + 1}" for i in range(n_comp)],
        sample_coords={k: cat[k] for k in ("network", "gain", "stimulated", "epoch")},
        attrs={"source": "rnn_gain_modulation", "difference": "forward", "bin_size": DT, "seed": int(seed),
               "n_trajectories": n_traj, "drop_steps": drop, "n_components": n_comp,
               "noise_std": -1.0 if noise_std is None else float(noise_std), "trial_kind": "A-A"},
    )
    out = np.stack(outputs)
    ds["decision_output"] = (("rnn", "rnn_gain", "rnn_trajectory"), out)
    ds["accuracy"] = (("rnn", "rnn_gain"), (out > 0).mean(axis=2))
    ds["explained_variance_ratio"] = (("rnn", "dim"), np.stack(explained))
    return ds.assign_coords(rnn=names, rnn_gain=gains, rnn_trajectory=np.arange(n_traj))
