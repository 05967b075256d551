"""Distances between conditions/animals, alignment, decoding, reductions (MDS/UMAP)."""
