"""Distances between simulated and reference trajectories.

``smape`` is the symmetric mean absolute percentage error of the GDN paper
(`graph-diffusion-networks-for-abms` Eq. 6), used to compare mean trajectories.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def smape(actual: ArrayLike, forecast: ArrayLike) -> float:
    r"""``(2/T) \sum_t |A_t - F_t| / (|A_t| + |F_t|)`` over the last axis (Eq. 6).

    Steps where both series are 0 count as 0 error.  Values lie in ``[0, 2]``.
    """
    a, f = np.asarray(actual, np.float64), np.asarray(forecast, np.float64)
    if a.shape != f.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"smape needs two 1-D series of equal length, got {a.shape}, {f.shape}")
    den = np.abs(a) + np.abs(f)
    ratio = np.divide(np.abs(a - f), den, out=np.zeros_like(den), where=den > 0)
    return float(2.0 * ratio.mean())
