"""AD-vs-finite-difference helpers shared by the model-library gradient tests."""

import jax
import numpy as np

from agentgrad.gradients import ad_gradients, finite_differences


def ad_and_fd(model, n_steps: int, n_runs: int, observable: str):
    """AD and FD (5% steps, common random numbers) estimates at default parameters, with
    independent keys."""
    ad = ad_gradients(model, None, jax.random.key(1), n_steps, n_runs, observable)
    fd = finite_differences(model, None, jax.random.key(2), n_steps, n_runs, observable)
    return ad, fd


def assert_tracks_fd(ad, fd, names, rel: float) -> None:
    """At every step: ``|AD - FD| <= 4 combined s.e. + rel |FD|``."""
    for name in names:
        diff = np.abs(ad.mean[name] - fd.mean[name])
        tol = 4 * np.hypot(ad.se[name], fd.se[name]) + rel * np.abs(fd.mean[name])
        assert np.all(diff <= tol), (name, ad.mean[name], fd.mean[name])
