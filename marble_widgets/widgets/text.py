"""Titles and captions of the dashboard views, shared by the live panels and the HTML export."""
from __future__ import annotations

#: Short panel names and one-line "how to read it" captions, keyed by view name.
VIEW_TEXT: dict[str, tuple[str, str]] = {
    "state": ("State space", "The flow field MARBLE learns from: trajectories in the first principal components; "
                             "arrows show the local velocity. Drag to rotate."),
    "neighbourhood": ("Graph neighbourhood", "One point (red diamond), its graph neighbours and their vectors, "
                                             "and the first tangent axes of its gauge frame."),
    "local": ("Local flow field", "Neighbours' vectors parallel-transported into the point's tangent frame: "
                                  "the small vector field whose derivatives MARBLE computes."),
    "features": ("Derivative features", "What the network reads at this point: grouped by derivative order; "
                                        "the heatmap is the Jacobian-like block ∂ⱼvᵢ (red +, blue −)."),
    "embedding": ("Embedding", "Each dot is one time step mapped into MARBLE's latent space; nearby dots have "
                               "similar local dynamics. The red diamond is the point shown on the left."),
    "behaviour": ("Behaviour", "The behavioural variable over time; selections in the embedding are marked "
                               "here to relate latent regions to behaviour."),
    "raster": ("Spike raster", "Spike counts per unit and time bin (darker = more spikes) of the first trial."),
    "heatmap": ("Distances between conditions", "Optimal-transport distance between the conditions' embedding "
                                                "distributions; small = similar dynamics. Click a cell to align."),
    "mds": ("MDS map", "Conditions placed so that map distances approximate the distance matrix; "
                       "the chosen pair is circled."),
    "overlay": ("Aligned pair", "Two conditions' embeddings after aligning the source onto the target; overlap "
                                "means the dynamics match up to a rotation."),
    "loss": ("Training", "Train and validation loss per epoch (left axis) and the learning rate (right, log); "
                         "the dashed line marks the epoch whose weights were kept."),
}
