"""The ``rec.marble`` accessor: preprocessing verbs chained on any recording Dataset.

Registered by ``import marble_widgets`` (xarray accessors are registered at import time).
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import xarray as xr

from marble_widgets.data.preprocess import align, rates, rebin, smooth, trials_table


@xr.register_dataset_accessor("marble")
class MarbleAccessor:
    """``rec.marble.<verb>``: the few preprocessing verbs users chain, on any recording Dataset."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def smooth(self, sigma: float, **kw: Any) -> xr.Dataset:
        """See :func:`smooth`."""
        return smooth(self._ds, sigma, **kw)

    def rates(self, sigma: float = 0.05, **kw: Any) -> xr.Dataset:
        """See :func:`rates`."""
        return rates(self._ds, sigma, **kw)

    def align(
        self, event: str = "move_onset_time", window: tuple[float, float] = (-0.25, 0.45), **kw: Any
    ) -> xr.Dataset:
        """See :func:`align`."""
        return align(self._ds, event, window, **kw)

    def rebin(self, bin_size: float, **kw: Any) -> xr.Dataset:
        """See :func:`rebin`."""
        return rebin(self._ds, bin_size, **kw)

    def flow_field(self, **kw: Any) -> xr.Dataset:
        """See :func:`marble_widgets.data.flow.flow_field`."""
        from marble_widgets.data.flow import flow_field

        return flow_field(self._ds, **kw)

    @property
    def trials(self) -> pd.DataFrame:
        """The trials table (variables on the ``trial`` dim only) as a DataFrame."""
        return trials_table(self._ds)
