"""One process of the two-process test in test_distributed.py (not collected by pytest).

Usage: python distributed_worker.py HOST:PORT PROCESS_ID; prints the observables and a
gradient of the sharded SIRNetwork run as JSON on process 0."""

import json
import sys

import agentgrad as ag

ag.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]), timeout_s=60)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from distributed_case import MODEL, N_STEPS, PARAMS  # noqa: E402

sharding = ag.Sharding()
assert sharding.size == 2 and jax.local_device_count() == 1


def infected(beta):
    p = dict(PARAMS, beta=beta)
    return ag.simulate(MODEL, p, jax.random.key(0), N_STEPS, sharding=sharding).observables


traj = infected(PARAMS["beta"])
grad = jax.grad(lambda b: infected(b)["infected"].sum())(PARAMS["beta"])
if ag.distributed.is_leader():
    print(json.dumps({k: np.asarray(v).tolist() for k, v in dict(traj, grad=grad).items()}))
