"""A user-defined model for the command line: ``agentgrad run examples/walkers.py:Walkers``.

Random walkers that step right with probability ``p``; ``E[position_t] = p t``, so
``d E[position_t] / dp = t`` (straight-through gives it exactly).  The class attributes
below are all the command line needs (see "Your own models on the command line" in
``docs/how-to/write-a-model.md``).
"""

import jax
import jax.numpy as jnp

import agentgrad as ag


class Walkers(ag.Model):
    """Random walkers that step right with probability p."""

    n_agents: int = 100
    estimator: ag.Estimator = ag.StraightThrough()

    cli_options = ("agents",)  # structural options accepted besides --estimator
    default_steps = 5
    observable_units = {"position": "cells"}

    @classmethod
    def from_options(cls, options):
        """Build from the command line's options (agents, graph, seed, estimator, ...)."""
        return cls(options.agents or 100, options.estimator)

    @property
    def param_space(self) -> ag.ParamSpace:
        return ag.ParamSpace({"p": ag.Param(0.5, 0.0, 1.0, description="step probability")})

    def init(self, params, key):
        return jnp.zeros(self.n_agents)

    def step(self, state, params, key, t):
        return state + ag.bernoulli(key, params["p"], self.estimator, (self.n_agents,))

    def observe(self, state, params, t):
        return {"position": jnp.mean(state)}


if __name__ == "__main__":
    traj = ag.simulate(Walkers(), {"p": 0.3}, jax.random.key(0), 10)
    print(traj.observables["position"])
