"""Plots of simulation outputs (matplotlib, non-interactive backend)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def _panels(n: int, width: float = 4.3, height: float = 3.3):
    """A figure with ``n`` panels in rows of at most 3 (unused axes switched off)."""
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def save_figure(fig, path: str | os.PathLike) -> None:
    """Lay out, write (creating the parent directory) and close ``fig``."""
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _finish(fig, axes, path, title: str) -> None:
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_observables(ds: xr.Dataset, path: str | os.PathLike, title: str = "") -> None:
    """One panel per scalar observable: ensemble mean with the 5-95% band over runs."""
    names = [n for n in ds.data_vars if ds[n].dims == ("run", "step")]
    fig, axes = _panels(len(names))
    step = ds["step"].values
    for ax, name in zip(axes, names, strict=True):
        v = ds[name].values
        ax.fill_between(step, *np.percentile(v, [5, 95], axis=0), alpha=0.3, label="5-95%")
        ax.plot(step, v.mean(axis=0), lw=2, label=f"mean of {v.shape[0]} runs")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel(ds[name].attrs.get("units", ""))
    _finish(fig, axes, path, title)


def plot_sweep(ds: xr.Dataset, path: str | os.PathLike, title: str = "") -> None:
    """One panel per scalar observable: its mean over runs at the last step against the
    first swept parameter, one line per value of the second (others at their first)."""
    swept = [d for d in ds.dims if d not in ("run", "step")]
    names = [n for n in ds.data_vars if ds[n].dims[-2:] == ("run", "step")]
    fig, axes = _panels(len(names))
    x = swept[0]
    for ax, name in zip(axes, names, strict=True):
        end = ds[name].isel(step=-1).mean("run")
        end = end.isel({d: 0 for d in swept[2:]})
        lines = (
            [(None, end)]
            if len(swept) == 1
            else [(v, end.sel({swept[1]: v})) for v in ds[swept[1]].values[:8]]
        )
        for value, curve in lines:
            label = "mean of runs" if value is None else f"{swept[1]} = {value:.4g}"
            ax.plot(ds[x].values, curve.values, "o-", lw=1.5, ms=3, label=label)
        ax.set_title(f"{name} at step {int(ds['step'].values[-1])}")
        ax.set_xlabel(x)
        ax.set_ylabel(ds[name].attrs.get("units", ""))
    _finish(fig, axes, path, title)


def plot_gradcheck(table, path: str | os.PathLike, title: str = "") -> None:
    """One panel per parameter: AD mean ± 2 s.e. per estimator against the FD line and band.

    ``table`` is :attr:`agentgrad.gradients.GradcheckResult.table`.
    """
    params = list(dict.fromkeys(table["parameter"]))
    fig, axes = _panels(len(params), width=4.5)
    for ax, name in zip(axes, params, strict=True):
        sub = table[table["parameter"] == name]
        fd = sub[sub["estimator"] == sub["estimator"].iloc[0]]
        ax.fill_between(
            fd["step"],
            fd["fd_mean"] - 2 * fd["fd_se"],
            fd["fd_mean"] + 2 * fd["fd_se"],
            color="k",
            alpha=0.15,
        )
        ax.plot(fd["step"], fd["fd_mean"], "k-", lw=2, label="finite differences")
        for label in dict.fromkeys(sub["estimator"]):
            e = sub[sub["estimator"] == label]
            ax.fill_between(
                e["step"], e["ad_mean"] - 2 * e["ad_se"], e["ad_mean"] + 2 * e["ad_se"], alpha=0.25
            )
            ax.plot(e["step"], e["ad_mean"], lw=1.5, label=f"AD {label}")
        ax.set_title(f"d/d {name}")
        ax.set_xlabel("step")
    _finish(fig, axes, path, title)


def plot_sensitivity(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Heatmap of the elasticity over (parameter x step) beside the parameter ranking."""
    names = [str(n) for n in ds["parameter"].values]
    el = ds["elasticity"].values
    fig, (ax, bar) = plt.subplots(
        1, 2, figsize=(12, 0.45 * len(names) + 2), gridspec_kw={"width_ratios": [3, 1]}
    )
    lim = float(np.nanmax(np.abs(el))) or 1.0
    im = ax.imshow(
        el,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        extent=(0.5, el.shape[1] + 0.5, len(names) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("step")
    ax.set_title(f"elasticity of {ds.attrs.get('observable', '')} (θ / y · ∂y/∂θ)")
    fig.colorbar(im, ax=ax)
    order = np.argsort(ds["rank"].values)
    bar.barh([names[i] for i in order][::-1], ds["mean_abs_elasticity"].values[order][::-1])
    bar.set_title("mean |elasticity|")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(history, path: str | os.PathLike) -> None:
    """Train and validation objective per epoch."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["train"], label="train objective", alpha=0.6)
    ax.plot(history["validation"], label="validation objective")
    ax.set_xlabel("epoch")
    ax.set_yscale("symlog")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_posterior_pairs(samples, truth, path: str | os.PathLike) -> None:
    """Posterior pair plot (histograms on the diagonal); the truth is marked when known."""
    names = list(samples)
    d = len(names)
    fig, axes = plt.subplots(d, d, figsize=(2.6 * d, 2.6 * d), squeeze=False)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            ax = axes[i, j]
            if i == j:
                ax.hist(np.asarray(samples[a]), bins=40, color="C0", alpha=0.7)
                if truth and a in truth:
                    ax.axvline(truth[a], color="k", ls="--")
            elif i > j:
                ax.scatter(np.asarray(samples[b]), np.asarray(samples[a]), s=2, alpha=0.3)
                if truth and a in truth and b in truth:
                    ax.plot(truth[b], truth[a], "k*", ms=10)
            else:
                ax.axis("off")
            if i == d - 1:
                ax.set_xlabel(b)
            if j == 0 and i > 0:
                ax.set_ylabel(a)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_predictive(predictive, observed, path: str | os.PathLike, units=None) -> None:
    """Posterior predictive median and 90% band against the observed series."""
    fig, axes = _panels(len(observed))
    for ax, name in zip(axes, observed, strict=True):
        v = predictive[name]
        steps = np.arange(1, v.shape[1] + 1)
        ax.fill_between(steps, *np.percentile(v, [5, 95], axis=0), alpha=0.3, label="90% band")
        ax.plot(steps, np.median(v, axis=0), label="predictive median")
        ax.plot(steps, observed[name], "k.", label="observed")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel((units or {}).get(name, ""))
    _finish(fig, axes, path, "posterior predictive")


def animate(
    frames: np.ndarray,
    path: str | os.PathLike,
    fps: int = 6,
    title: str = "",
    first_step: int = 0,
) -> None:
    """Write ``frames`` ``(T, H, W, 3)`` (RGB in [0, 1]) as an animation.

    The writer follows the suffix of ``path``: ``.gif`` uses Pillow (always available with
    matplotlib), ``.mp4`` needs ``ffmpeg`` on the PATH.  Frame ``k`` is labelled with step
    ``first_step + k``.
    """
    from matplotlib import animation

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1, got {frames.shape}")
    suffix = os.fspath(path).rsplit(".", 1)[-1].lower()
    if suffix == "gif":
        writer = animation.PillowWriter(fps=fps)
    elif suffix == "mp4":
        if not animation.writers.is_available("ffmpeg"):
            raise RuntimeError("writing .mp4 needs ffmpeg on the PATH; write a .gif instead")
        writer = animation.FFMpegWriter(fps=fps)
    else:
        raise ValueError(f"animations are written as .gif or .mp4, not {os.fspath(path)!r}")
    height, width = frames.shape[1:3]
    scale = 4.0 / max(height, width)
    fig, ax = plt.subplots(figsize=(width * scale + 0.2, height * scale + 0.5))
    image = ax.imshow(np.clip(frames[0], 0.0, 1.0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    label = ax.set_title("")

    def draw(k: int):
        image.set_data(np.clip(frames[k], 0.0, 1.0))
        label.set_text(f"{title}  step {first_step + k}".strip())
        return image, label

    anim = animation.FuncAnimation(fig, draw, frames=len(frames), blit=False)
    fig.tight_layout()
    anim.save(os.fspath(path), writer=writer, dpi=80)
    plt.close(fig)
