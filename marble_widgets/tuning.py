"""Hyper-parameter search whose evaluations run as dask tasks (threads, processes or a cluster).

Why: a search over MARBLE's settings is hours of independent fits. :func:`greedy_search` runs
coordinate descent (each factor in turn takes its best value, the others held fixed) and sends
every (config, seed) evaluation of a factor to dask at once, so a factor with 3 values and 3
seeds keeps 9 workers busy. It picks exactly what the one-at-a-time loop picks: the candidates of
one factor differ from the current best only in that factor, so their order does not matter.
``client=None`` runs on dask's local scheduler; any ``dask.distributed.Client`` runs the same code.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from marble_widgets.sessions import compute

__all__ = ["SearchResult", "greedy_search"]

Evaluate = Callable[[dict[str, Any], int], Mapping[str, float]]


@dataclass
class SearchResult:
    """The chosen config, its seed-averaged score, and every config tried (in the order tried).

    Each trial is ``{"config", "score", "per_seed": [{...evaluate's figures...}, ...], "seeds"}``.
    """

    best: dict[str, Any]
    best_score: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _check_search(search: Sequence[tuple[str, Sequence[Any]]], seeds: Sequence[int]) -> None:
    if not search:
        raise ValueError("search is empty: pass [(name, [value, ...]), ...], the first value of each being the start.")
    for item in search:
        if len(item) != 2 or isinstance(item[1], (str, bytes)) or len(item[1]) == 0:
            raise ValueError(f"each search entry must be (name, non-empty list of values); got {item!r}.")
    if not seeds:
        raise ValueError("seeds is empty: pass at least one seed, e.g. seeds=(0,).")


def _mean_score(name: str, config: dict[str, Any], runs: list[Mapping[str, float]]) -> float:
    """Seed-averaged ``name`` of one config; a clear error when evaluate did not return it."""
    values = []
    for run in runs:
        if name not in run:
            raise KeyError(f"evaluate returned {sorted(run)} for {config}; it must return the score key {name!r}.")
        values.append(float(run[name]))
    mean = sum(values) / len(values)
    if not math.isfinite(mean):
        raise ValueError(f"evaluate gave a non-finite {name} ({values}) for {config}; fix the config or evaluate.")
    return mean


def greedy_search(
    evaluate: Evaluate,
    base: Mapping[str, Any],
    search: Sequence[tuple[str, Sequence[Any]]],
    *,
    seeds: Sequence[int] = (0,),
    score: str = "score",
    minimize: bool = True,
    client: Any = None,
    scheduler: str = "threads",
) -> SearchResult:
    """Coordinate descent over ``search`` from ``base``, each factor's evaluations in parallel.

    ``evaluate(config, seed)`` returns a mapping of figures including ``score``; a config's score
    is its mean over ``seeds``. The start is ``base`` with every factor at its first value; factor
    by factor, the value with the best mean score replaces the current one only when strictly
    better (ties keep the current value). ``evaluate`` must be picklable for process schedulers
    and clusters (a module-level function, or a ``functools.partial`` of one).
    """
    import dask

    _check_search(search, seeds)
    sign = 1.0 if minimize else -1.0
    done: dict[str, dict[str, Any]] = {}
    trials: list[dict[str, Any]] = []

    def run(configs: list[dict[str, Any]]) -> None:
        new = [c for c in dict((_key(c), c) for c in configs).values() if _key(c) not in done]
        tasks = {f"{i}/{s}": dask.delayed(evaluate, pure=True)(dict(c), int(s))
                 for i, c in enumerate(new) for s in seeds}
        values = compute(tasks, client=client, scheduler=scheduler)
        for i, config in enumerate(new):
            runs = [dict(values[f"{i}/{s}"]) for s in seeds]
            trial = {"config": config, "score": _mean_score(score, config, runs), "per_seed": runs,
                     "seeds": [int(s) for s in seeds]}
            done[_key(config)] = trial
            trials.append(trial)

    best = {**base, **{name: values[0] for name, values in search}}
    run([best])
    for name, values in search:
        candidates = [{**best, name: value} for value in values]
        run(candidates)
        for cand in candidates:
            if sign * done[_key(cand)]["score"] < sign * done[_key(best)]["score"] - 1e-12:
                best = cand
    return SearchResult(best=dict(best), best_score=done[_key(best)]["score"], trials=trials)
