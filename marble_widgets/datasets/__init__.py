"""Bundled recordings, seeded synthetic systems and simulated RNNs: the public ``marble_widgets.datasets`` namespace."""
from __future__ import annotations

from marble_widgets.data.bundled import (
    data_dir,
    jenkins_nwb_path,
    licences,
    linear_track,
    linear_track_nwb_path,
    mc_maze_small,
    rat_hippocampus,
)
from marble_widgets.data.rnn import available_rnns, load_rnn, rnn_gain_modulation
from marble_widgets.data.session_folder import track_sessions
from marble_widgets.data.synthetic import (
    circle_field,
    concat_fields,
    constant_field,
    lattice,
    linear_field,
    paraboloid_field,
    planar_fields,
    rotated_copies,
    rotation_field,
    saddle_field,
    sphere_field,
    van_der_pol,
    vortex_field,
)

__all__ = [
    "available_rnns",
    "circle_field",
    "concat_fields",
    "constant_field",
    "data_dir",
    "jenkins_nwb_path",
    "lattice",
    "licences",
    "linear_field",
    "linear_track",
    "linear_track_nwb_path",
    "load_rnn",
    "mc_maze_small",
    "paraboloid_field",
    "planar_fields",
    "rat_hippocampus",
    "rnn_gain_modulation",
    "rotated_copies",
    "rotation_field",
    "saddle_field",
    "sphere_field",
    "track_sessions",
    "van_der_pol",
    "vortex_field",
]
