"""Errors raised by the data layer: each names the problem and the fix."""
from __future__ import annotations

import numpy as np


class MarbleDataError(ValueError):
    """Input data that cannot be used as given; the message says what is wrong and what to do."""


def require_finite(name: str, values: np.ndarray) -> None:
    """Raise if ``values`` holds NaN or inf, naming how many and where the first one is."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise MarbleDataError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf), the first at index "
            f"{first}. Remove or interpolate them before passing {name} (e.g. drop those bins/samples)."
        )
