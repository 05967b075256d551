"""AlignmentView (pair change, cache, score label) and TrainingMonitor (callback, throttle, Stop)."""
from __future__ import annotations

import numpy as np
import pytest
import toy_results
from plotly.callbacks import Points
from types import SimpleNamespace

from marble_widgets.widgets import AlignmentView, TrainingMonitor


class Recorder:
    """align/consistency stand-ins: shift the source by +10, score = mean source latent 0."""

    def __init__(self):
        self.calls = []

    def align(self, source, target):
        self.calls.append((str(source["condition"].values[0]), str(target["condition"].values[0])))
        return SimpleNamespace(aligned=source + 10.0)

    def score(self, source, target):
        return float(source.values[:, 0].mean())


@pytest.fixture
def view(emb):
    rec = Recorder()
    v = AlignmentView(emb, toy_results.distances(), toy_results.mds(), rec.align, rec.score)
    return v, rec


def test_initial_pair_and_pair_change(view, emb):
    v, rec = view
    assert (v.source, v.target) == ("left", "right") and rec.calls == [("left", "right")]
    src = emb.values[emb["condition"].values == "left"]
    np.testing.assert_allclose(np.asarray(v.overlay_view.data[1].x), src[:, 0] + 10.0)
    assert f"{src[:, 0].mean():.3f}" in v.score_label.value
    v.target_dropdown.value = "up"
    tgt = emb.values[emb["condition"].values == "up"]
    np.testing.assert_allclose(np.asarray(v.overlay_view.data[0].y), tgt[:, 1])
    assert v.overlay_view.data[0].name == "up (target)" and "left → up" in v.score_label.value
    assert tuple(v.heatmap_view.data[-1].x) == ("up",) and tuple(v.heatmap_view.data[-1].y) == ("left",)
    np.testing.assert_allclose(np.asarray(v.mds_view.data[-1].x), toy_results.mds().values[[0, 2], 0])


def test_results_are_cached_per_pair(view):
    v, rec = view
    v.target = "up"
    v.target = "right"
    v.target = "up"
    assert rec.calls == [("left", "right"), ("left", "up")]
    assert set(v.cache) == {("left", "right"), ("left", "up")}


def test_heatmap_click_picks_pair(view):
    v, _ = view
    v.heatmap_view.data[0]._dispatch_on_click(Points(point_inds=[[2, 1]], trace_index=0), None)
    assert (v.source, v.target) == ("up", "right") and v.source_dropdown.value == "up"


def test_alignment_errors(emb):
    with pytest.raises(ValueError, match="by='animal'"):
        AlignmentView(emb, toy_results.distances(), toy_results.mds(), by="animal")
    with pytest.raises(ValueError, match="absent from the embedding"):
        AlignmentView(emb, toy_results.distances(("left", "down")), toy_results.mds(("left", "down")))
    v = AlignmentView(emb, toy_results.distances(), toy_results.mds(), lambda s, t: s, lambda s, t: 1.0)
    with pytest.raises(ValueError, match="target='down'"):
        v.target = "down"
    assert {"mw-alignment-view"} <= set(v._dom_classes)
    assert "mw-align-overlay" in v.overlay_view._dom_classes


def _info(epoch, n=5):
    return dict(epoch=epoch, n_epochs=n, train_loss=1.0 / (epoch + 1), val_loss=2.0 / (epoch + 1),
                lr=0.1 * 0.5**epoch, diffusion_time=1.0, elapsed=0.01 * epoch)


def test_training_monitor_appends_and_stops():
    monitor = TrainingMonitor(throttle_s=0.0)
    assert [monitor.callback(_info(e)) for e in range(3)] == [False, False, False]
    np.testing.assert_allclose(np.asarray(monitor.loss_view.data[0].y), [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(np.asarray(monitor.loss_view.data[2].y), [0.1, 0.05, 0.025])
    np.testing.assert_array_equal(np.asarray(monitor.loss_view.data[1].x), [0, 1, 2])
    assert (monitor.progress.value, monitor.progress.max) == (3, 5)
    monitor.stop_button.click()
    assert monitor.callback(_info(3)) is True and monitor.stop_requested
    assert monitor.status.value.startswith("stopped at epoch 4/5") and monitor.stop_button.disabled
    assert monitor.history.sizes["epoch"] == 4
    monitor.reset()
    assert monitor.callback(_info(0)) is False and monitor.epochs_seen == 1


def test_training_monitor_throttles_but_draws_last_epoch():
    monitor = TrainingMonitor(throttle_s=60.0)
    for e in range(4):
        monitor.callback(_info(e))
    assert monitor.drawn_epochs == 1 and monitor.epochs_seen == 4  # first drawn, then throttled
    monitor.callback(_info(4))  # the last epoch (n_epochs=5) is always drawn
    assert monitor.drawn_epochs == 5 and len(monitor.loss_view.data[0].x) == 5
    with pytest.raises(ValueError, match="lacks"):
        monitor.callback({"epoch": 0})


def test_from_history():
    hist = toy_results.history(7)
    monitor = TrainingMonitor.from_history(hist)
    np.testing.assert_allclose(np.asarray(monitor.loss_view.data[1].y), hist["val_loss"].values)
    assert monitor.progress.value == 7 and "mw-training-monitor" in monitor._dom_classes
    final = f"final train {hist['train_loss'].values[-1]:.4g} · val {hist['val_loss'].values[-1]:.4g}"
    assert monitor.status.value == f"finished: 7 epochs · {final}"
