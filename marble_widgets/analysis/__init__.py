"""Distances between conditions/animals, alignment, decoding, reductions (MDS/UMAP).

Everything takes the embedding ``xarray.DataArray`` (sample, latent) returned by
``MARBLE.transform`` (sample coords ``condition``, ``trial``, ``time``, optionally ``animal``), or a
Dataset holding ``embedding`` next to behaviour variables of any shape (``MARBLE.results``), with
targets, labels and groups named by string; results are labelled xarray objects, so they stay
joined to conditions and behaviour.
"""
from __future__ import annotations

from marble_widgets.analysis.alignment import (
    Alignment,
    binned_means,
    consistency,
    ot_align,
    procrustes_align,
    procrustes_rotation,
)
from marble_widgets.analysis.decoding import (
    K_CANDIDATES,
    choose_k,
    cross_decode,
    decode,
    fold_assignment,
    train_test_decode,
)
from marble_widgets.analysis.distances import distances, transport_plan
from marble_widgets.analysis.reduce import mds, pca, umap

__all__ = [
    "Alignment",
    "K_CANDIDATES",
    "binned_means",
    "choose_k",
    "consistency",
    "cross_decode",
    "decode",
    "distances",
    "fold_assignment",
    "mds",
    "ot_align",
    "pca",
    "procrustes_align",
    "procrustes_rotation",
    "train_test_decode",
    "transport_plan",
    "umap",
]
