"""Square-lattice neighbourhoods for grid models.

``neighbour_sum(x)_{ij} = sum_{(di, dj) in K} x_{i+di, j+dj}`` over the offsets
``K`` of a von Neumann (``|di| + |dj| <= r``) or Moore (``max(|di|, |dj|) <= r``)
neighbourhood of radius ``r``, excluding the centre.  This is the 2-D convolution
with the neighbourhood matrix (`ad-vs-sbi-for-abms` Appendix A), computed as a sum
of shifted copies: periodic boundaries wrap (a torus), non-periodic boundaries
contribute zeros.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp

Neighbourhood = Literal["von_neumann", "moore"]


def offsets(kind: Neighbourhood = "von_neumann", radius: int = 1) -> list[tuple[int, int]]:
    """The ``(di, dj)`` offsets of a neighbourhood, centre excluded."""
    if kind not in ("von_neumann", "moore"):
        raise ValueError(f"unknown neighbourhood {kind!r}; use 'von_neumann' or 'moore'")
    if not isinstance(radius, int) or radius < 1:
        raise ValueError(f"neighbourhood radius must be an integer >= 1, got {radius!r}")
    rng = range(-radius, radius + 1)
    return [
        (di, dj)
        for di in rng
        for dj in rng
        if (di, dj) != (0, 0) and (kind == "moore" or abs(di) + abs(dj) <= radius)
    ]


def _shift(x: jax.Array, di: int, dj: int, periodic: bool) -> jax.Array:
    """``y[i, j] = x[i + di, j + dj]`` on the last two axes (zero outside if not periodic)."""
    if periodic:
        return jnp.roll(x, (-di, -dj), axis=(-2, -1))
    h, w = x.shape[-2:]
    pad = [(0, 0)] * (x.ndim - 2) + [(abs(di), abs(di)), (abs(dj), abs(dj))]
    padded = jnp.pad(x, pad)
    i0, j0 = abs(di) + di, abs(dj) + dj
    return padded[..., i0 : i0 + h, j0 : j0 + w]


class Grid(eqx.Module):
    """An ``height x width`` lattice with a fixed neighbourhood and boundary."""

    height: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    neighbourhood: str = eqx.field(static=True, default="von_neumann")
    radius: int = eqx.field(static=True, default=1)
    periodic: bool = eqx.field(static=True, default=False)

    def __check_init__(self) -> None:
        for name in ("height", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"grid {name} must be a positive integer, got {v!r}")
        offsets(self.neighbourhood, self.radius)  # validates

    @property
    def n_cells(self) -> int:
        return self.height * self.width

    def neighbour_sum(self, x: jax.Array) -> jax.Array:
        """Sum of ``x`` over each cell's neighbours; ``x`` has shape ``(..., height, width)``."""
        if x.shape[-2:] != (self.height, self.width):
            raise ValueError(f"expected trailing shape {(self.height, self.width)}, got {x.shape}")
        return sum(
            _shift(x, di, dj, self.periodic) for di, dj in offsets(self.neighbourhood, self.radius)
        )
