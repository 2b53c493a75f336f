"""Writing simulation outputs: observables as an xarray dataset in NetCDF."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr


def observables_dataset(
    observables: Mapping[str, Any], attrs: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """Dataset with one variable per observable, dimensions ``(run, step)``.

    ``observables[name]`` has shape ``(runs, steps)``; ``step`` runs from 1 (the state
    after the first step) to ``steps``.
    """
    data = {name: np.asarray(v) for name, v in observables.items()}
    runs, steps = next(iter(data.values())).shape[:2]
    coords = {"run": np.arange(runs), "step": np.arange(1, steps + 1)}
    variables = {}
    for name, v in data.items():
        extra = [f"{name}_dim{i}" for i in range(v.ndim - 2)]
        variables[name] = (("run", "step", *extra), v)
    clean = {
        k: (v if isinstance(v, int | float | str) else str(v)) for k, v in (attrs or {}).items()
    }
    return xr.Dataset(variables, coords=coords, attrs=clean)


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a dataset to NetCDF-4 with the h5netcdf engine."""
    ds.to_netcdf(path, engine="h5netcdf")
