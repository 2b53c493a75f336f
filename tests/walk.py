"""A Bernoulli random walk model shared by the gradient tests (§3.4.2, eq. 28)."""

import equinox as eqx
import jax.numpy as jnp

import agentgrad as ag


class BernoulliWalk(ag.Model):
    """``n`` walkers, ``x_{t+1} = x_t + Bernoulli(p)``: ``d E[mean x_t] / dp = t`` exactly."""

    n: int = eqx.field(static=True, default=1)
    estimator: ag.Estimator = ag.StraightThrough()

    @property
    def param_space(self):
        return ag.ParamSpace({"p": ag.Param(0.3, 0.0, 1.0)})

    def init(self, params, key):
        return jnp.zeros(self.n)

    def step(self, state, params, key, t):
        return state + ag.bernoulli(key, params["p"], self.estimator, shape=(self.n,))

    def observe(self, state, params, t):
        return {"mean": state.mean(), "x2": state.sum() ** 2}
