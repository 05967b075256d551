"""Colour keys: one writer (sample_key) and one reader (parse_sample_key) of the ``name[i]`` strings."""
from __future__ import annotations

import numpy as np
import pytest

from marble_widgets.plotting.common import parse_sample_key, sample_key, sample_keys, sample_values


def test_keys_round_trip_through_the_one_parser(ff):
    keys = sample_keys(ff)
    assert keys == ["condition", "trial", "time", "position", "hand_velocity[0]", "hand_velocity[1]"]
    assert [sample_key(*parse_sample_key(k)) for k in keys] == keys
    assert parse_sample_key("hand_velocity[1]") == ("hand_velocity", 1)
    np.testing.assert_array_equal(sample_values(ff, "hand_velocity[1]"), ff["hand_velocity"].values[:, 1])
    np.testing.assert_array_equal(sample_values(ff, "position"), ff["position"].values)


@pytest.mark.parametrize("key", ["hand_velocity[x]", "position[", "[0]", "hand_velocity[-1]", ""])
def test_a_malformed_key_says_how_to_write_one(key):
    with pytest.raises(ValueError, match=r"colour key .* is malformed: write 'name' or 'name\[i\]' with a column"):
        parse_sample_key(key)


@pytest.mark.parametrize("key", ["speed", "hand_velocity[2]", "hand_velocity", "position[0]"])
def test_a_key_naming_no_per_sample_column_lists_the_valid_keys(ff, key):
    listed = r"is not a per-sample variable; choose one of \['condition', .*'hand_velocity\[1\]'\]"
    with pytest.raises(ValueError, match=listed):
        sample_values(ff, key)
    with pytest.raises(TypeError, match="a colour key must be a str"):
        sample_values(ff, 3)
