"""TrainingView: per-epoch buffers, throttled live updates, the best epoch, Stop, export."""
from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import toy_results

from marble_widgets.widgets import TrainingMonitor, TrainingView
from marble_widgets.widgets.flow_view import unpack


def _info(epoch: int, n_epochs: int, val: float) -> dict:
    return {"epoch": epoch, "n_epochs": n_epochs, "train_loss": 1.0 / (epoch + 1), "val_loss": val,
            "lr": 0.01, "diffusion_time": 0.5 + epoch, "elapsed": 0.1 * (epoch + 1)}


def test_from_history_sends_each_series_and_marks_the_given_best_epoch():
    hist = toy_results.history(12)
    view = TrainingView.from_history(hist, best_epoch=7)
    got = view.arrays()
    np.testing.assert_array_equal(got["epoch"], np.arange(12.0))
    for key in ("train_loss", "val_loss", "lr"):
        np.testing.assert_array_equal(got[key], hist[key].values, err_msg=key)
    assert np.isnan(got["diffusion_time"]).all() and got["diffusion_time"].shape == (12,)  # not in this history
    assert view.best_epoch == 7 and view.n_epochs == 12 and view.drawn_epochs == 12 and view.finished
    assert view.status == f"finished: 12 epochs · train {1 / 12:.4g} · val {1.2 / 12:.4g}"
    assert TrainingMonitor is TrainingView


def test_best_epoch_defaults_to_lowest_validation_loss():
    hist = toy_results.history(6)
    hist["val_loss"][:] = [0.9, 0.5, 0.4, 0.45, 0.41, 0.6]
    assert TrainingView.from_history(hist).best_epoch == 2


def test_live_callback_throttles_and_always_sends_the_last_epoch():
    view = TrainingView(n_epochs=5, throttle_s=3600)
    vals = [0.9, 0.7, 0.8, 0.6, 0.65]
    assert view(_info(0, 5, vals[0])) is None
    assert view.drawn_epochs == 1 and view.status.startswith("epoch 1/5 · train 1 · val 0.9") and not view.finished
    for e in (1, 2, 3):
        assert view(_info(e, 5, vals[e])) is None
    assert view.epochs_seen == 4 and view.drawn_epochs == 1  # throttled: nothing sent since epoch 0
    assert view.callback(_info(4, 5, vals[4])) is None
    assert view.drawn_epochs == 5 and view.best_epoch == 3 and view.finished
    np.testing.assert_array_equal(view.arrays()["diffusion_time"], 0.5 + np.arange(5.0))
    np.testing.assert_array_equal(view.arrays()["val_loss"], vals)
    assert view.status == "finished: 5 epochs · train 0.2 · val 0.65 · 0.5 s"
    np.testing.assert_array_equal(view.history["train_loss"].values, 1.0 / np.arange(1, 6))
    view.reset()
    assert view.epochs_seen == 0 and view.arrays()["epoch"].size == 0 and view.best_epoch == -1


def test_stop_from_the_page_makes_the_callback_ask_fit_to_stop():
    view = TrainingView(n_epochs=10, throttle_s=3600)
    view(_info(0, 10, 1.0))
    view.stop_requested = True  # what the page's Stop button sets
    assert view(_info(1, 10, 0.9)) is True
    assert view.drawn_epochs == 2 and view.status.startswith("stopped at epoch 2/10")


def test_per_epoch_numbers_travel_as_binary_buffers():
    from ipywidgets.widgets.widget import _remove_buffers

    view = TrainingView.from_history(toy_results.history(4))
    state, paths, buffers = _remove_buffers(view.get_state())
    assert ["_arrays", "val_loss", "buffer"] in paths
    buf = buffers[paths.index(["_arrays", "val_loss", "buffer"])]
    assert bytes(buf) == (1.2 / (1 + np.arange(4.0))).astype("<f8").tobytes()


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="throttle_s must be >= 0 seconds; got -1"):
        TrainingView(throttle_s=-1)
    with pytest.raises(ValueError, match="n_epochs must be a positive number of epochs"):
        TrainingView(n_epochs=0)
    with pytest.raises(ValueError, match=r"callback info lacks \['val_loss'\]; MARBLE.fit passes epoch, n_epochs"):
        TrainingView()({"epoch": 0, "train_loss": 1.0, "lr": 0.1})
    with pytest.raises(TypeError, match="history must be MARBLE.loss_history_"):
        TrainingView.from_history({"train_loss": [1.0]})
    with pytest.raises(ValueError, match="model has no loss_history_: fit it first"):
        TrainingView.from_model(object())


def test_to_html_holds_the_curves(tmp_path):
    view = TrainingView.from_history(toy_results.history(5), best_epoch=3, title="Fit <1>")
    text = view.to_html(tmp_path / "t.html").read_text(encoding="utf-8")
    assert "<title>Fit &lt;1&gt;</title>" in text and not re.search(r"<script[^>]*\bsrc=", text)
    payload = json.loads(re.search(r"id='mw-payload'>(.*?)</script>", text, re.S).group(1))
    (entry,) = payload["views"]
    assert entry["key"] == "training" and entry["state"]["best_epoch"] == 3
    arrays = {k: unpack(e) for k, e in entry["state"]["_arrays"].items()}
    for key, value in view.arrays().items():
        np.testing.assert_array_equal(arrays[key], value, err_msg=key)


@pytest.mark.slow
def test_a_real_fit_reports_every_epoch():
    import marble_widgets as mw

    ff = mw.datasets.van_der_pol(mus=np.linspace(-1, 1, 2), n_initial=6)
    view = TrainingView(throttle_s=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = mw.MARBLE(order=1, k=8, out_dim=3, epochs=3, diffusion=False, verbose=False, seed=0).fit(
            ff, callback=view)
    hist = model.loss_history_
    assert view.n_epochs == 3 and view.drawn_epochs == 3
    for key in ("train_loss", "val_loss", "lr"):
        np.testing.assert_array_equal(view.arrays()[key], hist[key].values, err_msg=key)
