"""A first model: n Bernoulli random walkers, x_{t+1} = x_t + Bernoulli(p).

E[mean position after T steps] = T p, so its derivative in p is exactly T; compare
straight-through, Gumbel-softmax and finite differences (§3.4.2, eq. 28).

Run: python examples/random_walk.py
"""

import equinox as eqx
import jax
import jax.numpy as jnp

import agentgrad as ag


class Walk(ag.Model):
    n: int = eqx.field(static=True, default=100)
    estimator: ag.Estimator = ag.StraightThrough()

    @property
    def param_space(self):
        return ag.ParamSpace({"p": ag.Param(0.5, 0.0, 1.0, description="step probability")})

    def init(self, params, key):
        return jnp.zeros(self.n)

    def step(self, state, params, key, t):
        return state + ag.bernoulli(key, params["p"], self.estimator, shape=(self.n,))

    def observe(self, state, params, t):
        return {"mean_position": state.mean()}


def final_mean(model, p, key, n_steps=50):
    return ag.simulate(model, {"p": p}, key, n_steps).observables["mean_position"][-1]


if __name__ == "__main__":
    keys = jax.random.split(jax.random.key(0), 200)
    for name, est in [
        ("straight-through", ag.StraightThrough()),
        ("gumbel-softmax 0.1", ag.GumbelSoftmax(0.1)),
    ]:
        model = Walk(estimator=est)
        grads = jax.vmap(lambda k, m=model: jax.grad(lambda p: final_mean(m, p, k))(0.3))(keys)
        print(f"{name:<20} d/dp = {float(grads.mean()):7.3f} ± {float(grads.std() / 14.1):.3f}")
    model, h = Walk(), 0.02
    fd = jax.vmap(lambda k: final_mean(model, 0.3 + h, k) - final_mean(model, 0.3 - h, k))(keys)
    print(f"{'finite differences':<20} d/dp = {float(fd.mean() / (2 * h)):7.3f}   (exact: 50)")
