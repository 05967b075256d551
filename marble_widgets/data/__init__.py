"""Recordings -> xarray: NWB reading, binning, smoothing, trials, flow fields (never imports torch)."""

# Registers the ``.marble`` accessor on every xarray Dataset as soon as any data module is used.
from marble_widgets.data import preprocess as _preprocess  # noqa: E402,F401
