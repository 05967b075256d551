"""dashboard(): composition from a duck-typed model, linking, and the offline HTML export."""
from __future__ import annotations

import plotly
import pytest
import toy_results

from marble_widgets.widgets import dashboard


class FakeModel:
    """The three things dashboard() uses from a fitted MARBLE."""

    def __init__(self, ff, ins):
        self._ff, self._ins = ff, ins
        self.loss_history_ = toy_results.history(6)
        self.calls = []

    def transform(self, flow_field):
        self.calls.append("transform")
        return toy_results.embedding(flow_field)

    def inspect(self, flow_field):
        self.calls.append("inspect")
        return self._ins


@pytest.fixture(scope="module")
def board(ff, ins, rec):
    model = FakeModel(ff, ins)
    board = dashboard(model, ff, rec, dist=toy_results.distances(), mds_coords=toy_results.mds(),
                      align_fn=lambda s, t: s, consistency_fn=lambda s, t: 0.25)
    return board, model


def test_composition_and_links(board):
    board, model = board
    assert model.calls == ["transform", "inspect"]
    assert list(board.parts) == ["Flow field", "Embedding", "Alignment", "Training"]
    assert board.tabs.titles == ("Flow field", "Embedding", "Alignment", "Training")
    assert "raster" in board.embedding_explorer.views
    board.embedding_explorer.sample = 12
    assert board.flow_explorer.sample == 12
    assert "mw-dashboard" in board._dom_classes and "mw-dashboard-tabs" in board.tabs._dom_classes


def test_given_results_skip_model_calls_and_no_recording_means_no_raster(ff, ins, emb):
    model = FakeModel(ff, ins)
    del model.loss_history_
    board = dashboard(model, ff, embedding=emb, inspect_ds=ins, dist=toy_results.distances(),
                      mds_coords=toy_results.mds(), align_fn=lambda s, t: s, consistency_fn=lambda s, t: 0.0)
    assert model.calls == [] and board.training is None and "Training" not in board.parts
    assert "raster" not in board.embedding_explorer.views


def test_failing_alignment_leaves_the_tab_out_with_a_warning(ff, ins, emb):
    def bad_align(source, target):
        raise ValueError("no shared bins.")

    with pytest.warns(UserWarning, match="alignment tab left out: aligning 'left' onto 'right' failed: no shared"):
        board = dashboard(FakeModel(ff, ins), ff, embedding=emb, inspect_ds=ins, dist=toy_results.distances(),
                          mds_coords=toy_results.mds(), align_fn=bad_align, consistency_fn=lambda s, t: 0.0)
    assert board.alignment is None and list(board.parts) == ["Flow field", "Embedding", "Training"]


def test_to_html_embeds_plotlyjs_once_and_every_figure(board, tmp_path):
    board, _ = board
    path = board.to_html(tmp_path / "out" / "dash.html")
    text = path.read_text(encoding="utf-8")
    bundle_head = plotly.offline.get_plotlyjs()[:300]
    assert text.count(bundle_head) == 1
    assert 'src="https://' not in text  # no script is loaded from the network
    figures = board.figures()
    assert len(figures) == 5 + 4 + 3 + 1  # flow views, embedding views (with raster), alignment, training
    for key in figures:
        div = "mw-fig-" + key.lower().replace("/", "-").replace(" ", "-")
        assert f'id="{div}"' in text
