"""The model both sides of test_distributed.py run (imported by the worker processes)."""

import jax.numpy as jnp

import agentgrad as ag

MODEL = ag.models.SIRNetwork(graph=ag.graphs.erdos_renyi(400, 6.0, key=0))
PARAMS = {"beta": jnp.float32(0.2)}
N_STEPS = 10
