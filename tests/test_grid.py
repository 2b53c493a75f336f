"""Grid neighbourhoods against scipy's 2-D convolution."""

import jax
import numpy as np
import pytest
from scipy.signal import convolve2d

from agentgrad import Grid
from agentgrad.spaces.grid import offsets

VON_NEUMANN = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], float)
MOORE = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], float)


@pytest.mark.parametrize("kind, kernel", [("von_neumann", VON_NEUMANN), ("moore", MOORE)])
@pytest.mark.parametrize("periodic", [True, False])
def test_neighbour_sum_is_convolution(kind, kernel, periodic):
    x = jax.random.uniform(jax.random.key(0), (2, 7, 9))
    grid = Grid(7, 9, kind, 1, periodic)
    expected = np.stack(
        [
            convolve2d(np.asarray(xi), kernel, mode="same", boundary="wrap" if periodic else "fill")
            for xi in x
        ]
    )
    np.testing.assert_allclose(grid.neighbour_sum(x), expected, rtol=1e-5, atol=1e-6)


def test_offsets_and_validation():
    assert len(offsets("von_neumann", 2)) == 12 and len(offsets("moore", 2)) == 24
    with pytest.raises(ValueError, match="unknown neighbourhood"):
        Grid(3, 3, "hex")
    with pytest.raises(ValueError, match="height must be a positive integer"):
        Grid(0, 3)
    with pytest.raises(ValueError, match="expected trailing shape"):
        Grid(3, 3).neighbour_sum(np.zeros((4, 4)))
