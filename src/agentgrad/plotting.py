"""Plots of simulation outputs (matplotlib, non-interactive backend)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def plot_observables(ds: xr.Dataset, path: str | os.PathLike, title: str = "") -> None:
    """One panel per scalar observable: ensemble mean with the 5-95% band over runs."""
    names = [n for n in ds.data_vars if ds[n].dims == ("run", "step")]
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    step = ds["step"].values
    for ax, name in zip(axes.flat, names, strict=False):
        v = ds[name].values
        ax.fill_between(step, *np.percentile(v, [5, 95], axis=0), alpha=0.3, label="5-95%")
        ax.plot(step, v.mean(axis=0), lw=2, label=f"mean of {v.shape[0]} runs")
        ax.set_title(name)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
