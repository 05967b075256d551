"""The retired FigureWidget explorers' names: FutureWarning, and a FlowView built from the same inputs."""
from __future__ import annotations

from ipywidgets.widgets.widget_link import Link
import numpy as np
import pytest

from marble_widgets.widgets import EmbeddingExplorer, FlowFieldExplorer, FlowView, link_explorers


def test_flow_field_explorer_builds_a_flow_view_on_marbles_neighbours(ff, ins, emb):
    with pytest.warns(FutureWarning, match=r"FlowFieldExplorer\(flow_field, inspect_ds, embedding\) is deprecated"):
        view = FlowFieldExplorer(ff, ins, emb)
    assert isinstance(view, FlowView)
    np.testing.assert_array_equal(view.arrays()["neighbors"], ins["neighbors"].values)
    np.testing.assert_array_equal(view.arrays()["embedding"], emb.values[:, :2].astype(np.float32))


def test_embedding_explorer_and_link(ff, emb):
    with pytest.warns(FutureWarning, match="use mw.FlowView"):
        a = EmbeddingExplorer(emb, ff, color_by="position")
        b = EmbeddingExplorer(emb, ff)
    assert a.color_by == "position"
    a.sample = 12
    with pytest.warns(FutureWarning, match="link_explorers is deprecated"):
        link = link_explorers(a, b)
    assert isinstance(link, Link) and link.source == (a, "sample") and link.target == (b, "sample") and b.sample == 12
    with pytest.warns(FutureWarning), pytest.raises(TypeError, match="flow_explorer must be a FlowView"):
        link_explorers(a, object())
