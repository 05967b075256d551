"""Recordings -> xarray: NWB reading, binning, smoothing, trials, flow fields (never imports torch)."""
