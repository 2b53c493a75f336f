"""Neural cellular automata: cells whose update rule is a small CNN
(`flame-framework-for-learning-in-abms` §4.1, mode 2 "a DNN inside a substep", after
Mordvintsev et al. 2020, "Growing Neural Cellular Automata").

Agents are the cells of an ``H x W`` grid, each with a ``C``-channel state (channels
0-3: RGBA with premultiplied colour, the rest hidden); the state is one array
``cells`` of shape ``(C, H, W)``.  One substep, ``grow``:

* observe (perception): each channel filtered by the identity and the Sobel kernels
  ``K_x = [[-1,0,1],[-2,0,2],[-1,0,1]] / 8``, ``K_y = K_x^T`` (zero padding) -> ``3C``
  channels per cell;
* policy (the learned rule): ``ds = W_2 relu(W_1 p + b_1)``, two 1x1 convolutions
  (``3C -> hidden -> C``; ``W_2`` starts at zero, so the initial rule does nothing);
* transition: each cell updates, ``s <- s + ds``, with probability ``fire_rate``
  (independently per cell and step: no global clock); then every cell whose 3x3
  neighbourhood has no alpha above ``alive_threshold`` before *and* after the update
  is emptied (alive masking).

The initial state is ``initial`` (default: one seed cell in the centre with all
channels but RGB set to 1).  :func:`target_pattern` draws RGBA targets in code (no
downloads).  Train the rule with :func:`agentgrad.train` (see
``examples/nca_morphogenesis.py``).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad import rng
from agentgrad.errors import AgentgradError
from agentgrad.params import real_dtype
from agentgrad.substeps import Substep, SubstepModel

_SOBEL = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def perceive(cells: jax.Array) -> jax.Array:
    """Identity, Sobel-x and Sobel-y of every channel: ``(C, H, W) -> (3C, H, W)``
    (channels ``[identity; K_x; K_y]``, zero padding), as shifted sums (cheaper on CPU
    than a grouped convolution)."""
    h, w = cells.shape[1:]
    padded = jnp.pad(cells, ((0, 0), (1, 1), (1, 1)))

    def shifted(dy: int, dx: int) -> jax.Array:
        return padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    def filtered(k: np.ndarray) -> jax.Array:
        offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if k[dy + 1, dx + 1]]
        return sum(k[dy + 1, dx + 1] * shifted(dy, dx) for dy, dx in offsets)

    return jnp.concatenate([cells, filtered(_SOBEL), filtered(_SOBEL.T)])


def alive(cells: jax.Array, threshold: float) -> jax.Array:
    """Cells with an alpha above ``threshold`` somewhere in their 3x3 neighbourhood."""
    alpha = cells[3]
    pooled = jax.lax.reduce_window(alpha, -jnp.inf, jax.lax.max, (3, 3), (1, 1), "SAME")
    return pooled > threshold


class Grow(Substep):
    """Perception -> per-cell two-layer rule (1x1 convolutions) -> stochastic,
    alive-masked update."""

    name: ClassVar[str] = "grow"
    w_hidden: jax.Array  # (width, 3C)
    b_hidden: jax.Array  # (width,)
    w_output: jax.Array  # (C, width), zero at initialisation
    fire_rate: float = eqx.field(static=True)
    alive_threshold: float = eqx.field(static=True)

    def __init__(
        self,
        channels: int,
        width: int,
        key: jax.Array,
        *,
        fire_rate: float = 0.5,
        alive_threshold: float = 0.1,
    ) -> None:
        dtype = real_dtype()
        bound = 1.0 / np.sqrt(3 * channels)  # PyTorch's default 1x1-conv initialisation
        k_w, k_b = jax.random.split(key)
        self.w_hidden = jax.random.uniform(k_w, (width, 3 * channels), dtype, -bound, bound)
        self.b_hidden = jax.random.uniform(k_b, (width,), dtype, -bound, bound)
        self.w_output = jnp.zeros((channels, width), dtype)
        self.fire_rate = float(fire_rate)
        self.alive_threshold = float(alive_threshold)

    def observe(self, state, params, t) -> jax.Array:
        return perceive(state["cells"])

    def policy(self, perception, state, params, key, t) -> jax.Array:
        hidden = jnp.einsum("oc,chw->ohw", self.w_hidden, perception)
        hidden = jax.nn.relu(hidden + self.b_hidden[:, None, None])
        return jnp.einsum("oc,chw->ohw", self.w_output, hidden)

    def transition(self, state, ds, params, key, t) -> dict[str, jax.Array]:
        cells = state["cells"]
        fires = rng.uniform(key, cells.shape[1:], cells.dtype) < self.fire_rate
        updated = cells + ds * fires.astype(cells.dtype)
        keep = alive(cells, self.alive_threshold) & alive(updated, self.alive_threshold)
        return {"cells": updated * keep.astype(cells.dtype)}


def seed_state(channels: int, size: int) -> jax.Array:
    """All cells empty but the central one, whose alpha and hidden channels are 1."""
    cells = np.zeros((channels, size, size), np.float64)
    cells[3:, size // 2, size // 2] = 1.0
    return jnp.asarray(cells, real_dtype())


class NeuralCA(SubstepModel):
    """A neural cellular automaton on a ``size x size`` grid (see module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {
        "alive": "cells",
        "alpha": "sum of alpha over cells",
    }
    initial: jax.Array
    size: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)

    def __init__(
        self,
        size: int = 32,
        *,
        channels: int = 16,
        width: int = 128,
        fire_rate: float = 0.5,
        key: jax.Array | None = None,
    ) -> None:
        if not (isinstance(size, int) and size >= 3):
            raise AgentgradError(f"size must be an integer >= 3, got {size!r}")
        if not (isinstance(channels, int) and channels >= 4):
            raise AgentgradError(f"channels must be >= 4 (RGBA + hidden), got {channels!r}")
        if not 0.0 < fire_rate <= 1.0:
            raise AgentgradError(f"fire_rate must be in (0, 1], got {fire_rate!r}")
        key = jax.random.key(0) if key is None else key
        self.size, self.channels = size, channels
        self.initial = seed_state(channels, size)
        self.substeps = (Grow(channels, width, key, fire_rate=fire_rate),)

    def with_initial(self, cells: jax.Array) -> NeuralCA:
        """The same automaton started from ``cells`` (shape ``(C, H, W)``)."""
        if jnp.shape(cells) != self.initial.shape:
            raise AgentgradError(
                f"initial cells must have shape {self.initial.shape}, got {jnp.shape(cells)}"
            )
        return eqx.tree_at(lambda m: m.initial, self, jnp.asarray(cells, self.initial.dtype))

    def init(self, params, key) -> dict[str, jax.Array]:
        return {"cells": self.initial}

    def frame(self, state) -> jax.Array:
        """The RGBA channels on white (as in the paper's figures)."""
        return on_white(state["cells"])

    def observe(self, state, params, t) -> dict[str, jax.Array]:
        cells = state["cells"]
        return {
            "alive": jnp.sum(alive(cells, 0.1).astype(cells.dtype)),
            "alpha": jnp.sum(jnp.clip(cells[3], 0.0, 1.0)),
        }


def rgba(cells: jax.Array) -> np.ndarray:
    """Displayable RGB image ``(H, W, 3)`` of premultiplied RGBA cells on white."""
    return np.asarray(on_white(cells))


def on_white(cells: jax.Array) -> jax.Array:
    """RGB ``(H, W, 3)`` of the premultiplied RGBA channels ``cells[:4]`` over white."""
    x = jnp.clip(cells[:4], 0.0, 1.0)
    return jnp.clip(1.0 - x[3][..., None] + jnp.moveaxis(x[:3], 0, -1), 0.0, 1.0)


def target_pattern(size: int, shape: str = "butterfly") -> jax.Array:
    """An RGBA target ``(4, size, size)`` (premultiplied colour), drawn in code.

    ``shape``: ``"butterfly"`` (two pairs of wings and a body, about 60% of the grid)
    or ``"smiley"`` (a yellow face with eyes and a mouth).
    """
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5  # cell centres in [-0.5, 0.5]
    colour = np.zeros((size, size, 3))
    alpha = np.zeros((size, size))

    def paint(mask: np.ndarray, rgb: tuple[float, float, float]) -> None:
        colour[mask] = rgb
        alpha[mask] = 1.0

    if shape == "butterfly":
        for sx in (-1, 1):
            upper = ((x - sx * 0.15) / 0.14) ** 2 + ((y + 0.1) / 0.15) ** 2 <= 1
            lower = ((x - sx * 0.11) / 0.1) ** 2 + ((y - 0.12) / 0.1) ** 2 <= 1
            paint(upper, (0.95, 0.5, 0.1))
            paint(lower, (0.2, 0.45, 0.9))
            paint(((x - sx * 0.15) / 0.05) ** 2 + ((y + 0.12) / 0.05) ** 2 <= 1, (0.1, 0.1, 0.1))
        paint((np.abs(x) <= 0.03) & (np.abs(y) <= 0.25), (0.25, 0.15, 0.1))
    elif shape == "smiley":
        r = np.hypot(x, y)
        paint(r <= 0.3, (1.0, 0.85, 0.1))
        for sx in (-1, 1):
            paint(np.hypot(x - sx * 0.11, y + 0.08) <= 0.045, (0.15, 0.1, 0.05))
        paint((np.abs(r - 0.0) <= 0.2) & (np.abs(r) >= 0.15) & (y > 0.05), (0.6, 0.1, 0.1))
    else:
        raise AgentgradError(f"unknown target shape {shape!r}; choose butterfly or smiley")
    image = np.concatenate([colour * alpha[..., None], alpha[..., None]], axis=-1)
    return jnp.asarray(np.moveaxis(image, -1, 0), real_dtype())


__all__ = ["Grow", "NeuralCA", "alive", "perceive", "rgba", "seed_state", "target_pattern"]
