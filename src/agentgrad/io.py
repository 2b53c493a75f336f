"""Reading observed data and writing outputs (observables as xarray datasets in NetCDF)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from agentgrad.errors import AgentgradError


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
    return xr.Dataset(variables, coords=coords, attrs=netcdf_attrs(attrs or {}))


def netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, int | float | str]:
    """Attributes NetCDF can store: numbers and strings as they are, the rest as text."""
    return {k: (v if isinstance(v, int | float | str) else str(v)) for k, v in attrs.items()}


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a dataset to NetCDF-4 with the h5netcdf engine."""
    ds.to_netcdf(path, engine="h5netcdf")


def read_observed_csv(path: str | os.PathLike, valid: Sequence[str]) -> dict[str, np.ndarray]:
    """Read observed data: a CSV with a header of observable names, one row per step.

    Every column must be a known observable (``valid``) named once, every value a
    finite number, and there must be at least one row.  UTF-8 with or without a
    byte-order mark (Excel's "CSV UTF-8").  Raises :class:`AgentgradError` otherwise.
    """
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as err:
        raise AgentgradError(f"cannot read data file {str(path)!r}: {err.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise AgentgradError(f"data file {str(path)!r} is not a UTF-8 CSV: {err}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise AgentgradError(f"{path}: needs a header of observable names and at least one row")
    header = [h.strip() for h in rows[0]]
    unknown = [h for h in header if h not in valid]
    if unknown:
        raise AgentgradError(
            f"{path}: unknown column {unknown[0]!r}; observables are: {', '.join(valid)}"
        )
    repeated = [h for i, h in enumerate(header) if h in header[:i]]
    if repeated:
        raise AgentgradError(f"{path}: column {repeated[0]!r} appears more than once")
    data = {h: [] for h in header}
    for lineno, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            raise AgentgradError(f"{path}:{lineno}: expected {len(header)} values, got {len(row)}")
        for h, cell in zip(header, row, strict=True):
            try:
                value = float(cell)
            except ValueError:
                raise AgentgradError(f"{path}:{lineno}: {cell!r} is not a number") from None
            if not np.isfinite(value):
                raise AgentgradError(f"{path}:{lineno}: column {h!r} is not finite ({cell})")
            data[h].append(value)
    return {h: np.asarray(v, np.float32) for h, v in data.items()}
