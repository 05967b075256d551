"""The wire format of the browser-drawn views (``widgets/page.py``): per-column quantised buffers."""
from __future__ import annotations

import base64

import numpy as np
import pytest

from marble_widgets.widgets.page import pack_quantized, quantization_error, unpack


def _columns(seed: int = 0) -> np.ndarray:
    """(500, 4) columns of very different ranges: unit noise, 1e4 offset, tiny values, heavy tails."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.standard_normal(500), 1e4 + rng.uniform(0, 3, 500),
                            1e-6 * rng.standard_normal(500), rng.standard_cauchy(500)])


@pytest.mark.parametrize("bits", [8, 16])
def test_quantised_columns_stay_within_half_a_step(bits):
    a = _columns()
    entry = pack_quantized(a, bits)
    assert entry["dtype"] == {8: "uint8", 16: "uint16"}[bits] and entry["shape"] == [500, 4]
    assert len(entry["buffer"]) == a.size * bits // 8
    # the bound, computed here from the data: half of (max - min) / (2**bits - 2) per column
    half_step = (a.max(axis=0) - a.min(axis=0)) / (2 * (2**bits - 2))
    np.testing.assert_allclose(quantization_error(entry), half_step, rtol=1e-12)
    out = unpack(entry)
    assert out.dtype == np.float32 and out.shape == a.shape
    err = np.abs(out.astype(np.float64) - a)
    assert (err <= half_step * (1 + 1e-9) + 2.0**-24 * np.abs(a)).all()
    # the ends of each column are codes 0 and 2**bits - 2: min decodes to itself (up to float32)
    codes = np.frombuffer(entry["buffer"], dtype=entry["dtype"]).reshape(a.shape)
    assert (codes.min(axis=0) == 0).all() and (codes.max(axis=0) == 2**bits - 2).all()
    np.testing.assert_array_equal(out[a.argmin(axis=0), range(4)], a.min(axis=0).astype(np.float32))


def test_quantised_nan_constant_and_empty_columns():
    a = np.array([[1.0, 5.0, np.nan], [np.nan, 5.0, np.nan], [3.0, 5.0, np.inf], [2.0, 5.0, np.nan]])
    entry = pack_quantized(a, 8)
    assert entry["quantized"]["missing"] == 255
    out = unpack(entry)
    np.testing.assert_array_equal(np.isnan(out), ~np.isfinite(a))  # non-finite -> NaN, finite stays finite
    np.testing.assert_array_equal(out[:, 1], 5.0)  # a constant column is exact
    np.testing.assert_array_equal(out[[0, 2, 3], 0], [1.0, 3.0, 2.0])  # 1..3 in 254 steps: 2 is code 127
    assert entry["quantized"]["offset"][2] == 0.0 and entry["quantized"]["step"][2] == 1.0


def test_quantised_buffer_deflates_and_travels_as_base64():
    a = np.repeat(_columns()[:50], 20, axis=0)  # repetitive: compresses
    entry = pack_quantized(a, 8, compress=True)
    assert entry["compression"] == "deflate" and len(entry["buffer"]) < 0.9 * a.size
    plain = unpack(pack_quantized(a, 8))
    np.testing.assert_array_equal(unpack(entry), plain)
    np.testing.assert_array_equal(unpack({**entry, "buffer": base64.b64encode(entry["buffer"]).decode()}), plain)


def test_quantise_rejects_bad_input():
    with pytest.raises(ValueError, match=r"bits must be one of \[8, 16\]; got 12"):
        pack_quantized(np.zeros((2, 2)), 12)
    with pytest.raises(ValueError, match=r"takes a \(rows, columns\) array; got shape \(3,\)"):
        pack_quantized(np.zeros(3), 8)
