"""Quick start: simulate the network SIR model and differentiate total infections.

Run: python examples/sir_network_quickstart.py [N_AGENTS]
"""

import sys

import jax

import agentgrad as ag

n_agents = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000

graph = ag.graphs.erdos_renyi(n_agents, mean_degree=10, key=jax.random.key(0))
model = ag.models.SIRNetwork(graph=graph, estimator=ag.StraightThrough())
params = model.param_space.defaults()  # {"beta": 0.4, "gamma": 0.05, ...}
traj = ag.simulate(model, params, jax.random.key(1), n_steps=60)
print("peak daily new infections:", float(traj.observables["new_infected"].max()))


def total_infections(p):
    return ag.simulate(model, p, jax.random.key(1), n_steps=60).observables["new_infected"].sum()


grads = jax.grad(total_infections)(params)  # same keys as params
for name, g in grads.items():
    print(f"d total_infections / d {name:<22} = {float(g):+.4f}")

x = ag.bernoulli(jax.random.key(2), 0.3, estimator=ag.GumbelSoftmax(0.1))
print("a Gumbel-softmax Bernoulli draw:", float(x))
