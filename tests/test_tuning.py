"""greedy_search: coordinate descent whose evaluations are dask tasks (same choice on any scheduler)."""
from __future__ import annotations

import functools

import pytest

from marble_widgets.tuning import greedy_search

SEARCH = [("a", [0, 1, 2, 3]), ("b", [0, 1, 2])]


def bowl(config: dict, seed: int, centre: tuple[float, float] = (2.0, 1.0)) -> dict:
    """A bowl with its minimum at ``centre``; the seed shifts every score by 0.01 * seed."""
    err = (config["a"] - centre[0]) ** 2 + (config["b"] - centre[1]) ** 2
    return {"score": err + 0.01 * seed, "err": err}


def sequential(evaluate, base, search, seeds):
    """The one-evaluation-at-a-time loop greedy_search must agree with (written independently)."""
    def mean(cfg):
        return sum(evaluate(cfg, s)["score"] for s in seeds) / len(seeds)
    best = {**base, **{n: v[0] for n, v in search}}
    best_score = mean(best)
    for name, values in search:
        for value in values:
            cand = {**best, name: value}
            if mean(cand) < best_score - 1e-12:
                best, best_score = cand, mean(cand)
    return best, best_score


def test_finds_the_minimum_and_tries_each_config_once():
    result = greedy_search(bowl, {"c": "fixed"}, SEARCH, seeds=(0, 2), scheduler="sync")
    assert result.best == {"c": "fixed", "a": 2, "b": 1}
    assert result.best_score == pytest.approx(0.01)  # err 0, seeds (0, 2) -> mean shift 0.01
    tried = [(t["config"]["a"], t["config"]["b"]) for t in result.trials]
    assert tried == [(0, 0), (1, 0), (2, 0), (3, 0), (2, 1), (2, 2)]
    assert [r["err"] for r in result.trials[0]["per_seed"]] == [5.0, 5.0]
    assert result.trials[0]["seeds"] == [0, 2]


@pytest.mark.parametrize("centre", [(2.0, 1.0), (0.0, 2.0), (3.4, -1.0), (1.5, 0.5)])
def test_matches_the_sequential_loop(centre):
    evaluate = functools.partial(bowl, centre=centre)
    result = greedy_search(evaluate, {}, SEARCH, seeds=(0, 1), scheduler="threads")
    best, best_score = sequential(evaluate, {}, SEARCH, (0, 1))
    assert result.best == best
    assert result.best_score == pytest.approx(best_score)


def test_maximize_and_ties_keep_the_current_value():
    flat = greedy_search(lambda c, s: {"score": 1.0}, {}, SEARCH, scheduler="sync")
    assert flat.best == {"a": 0, "b": 0}
    up = greedy_search(lambda c, s: {"score": c["a"] + c["b"]}, {}, SEARCH, minimize=False, scheduler="sync")
    assert up.best == {"a": 3, "b": 2}


@pytest.mark.slow
def test_local_cluster_gives_the_serial_result():
    distributed = pytest.importorskip("distributed")
    serial = greedy_search(bowl, {}, SEARCH, seeds=(0, 1), scheduler="sync")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        clustered = greedy_search(bowl, {}, SEARCH, seeds=(0, 1), client=client)
    assert clustered.best == serial.best
    assert clustered.trials == serial.trials


def test_bad_input():
    with pytest.raises(ValueError, match="search is empty"):
        greedy_search(bowl, {}, [])
    with pytest.raises(ValueError, match="non-empty list of values"):
        greedy_search(bowl, {}, [("a", [])])
    with pytest.raises(ValueError, match="seeds is empty"):
        greedy_search(bowl, {}, SEARCH, seeds=())
    with pytest.raises(KeyError, match="must return the score key 'loss'"):
        greedy_search(bowl, {}, SEARCH, score="loss", scheduler="sync")
    with pytest.raises(ValueError, match="non-finite score"):
        greedy_search(lambda c, s: {"score": float("nan")}, {}, SEARCH, scheduler="sync")
    with pytest.raises(ValueError, match="scheduler must be one of"):
        greedy_search(bowl, {}, SEARCH, scheduler="gpu")
