"""Pure functions that turn results (xarray) into plotly figures."""
