"""Learned differentiable surrogates of ABMs: Graph Diffusion Networks
(`graph-diffusion-networks-for-abms`).

* :mod:`~agentgrad.surrogate.view` — the agent view a model implements;
* :mod:`~agentgrad.surrogate.data` — ramification datasets;
* :mod:`~agentgrad.surrogate.gdn` — the network, its noise schedule and sampler;
* :mod:`~agentgrad.surrogate.train` — the training loop;
* :mod:`~agentgrad.surrogate.model` — a trained GDN as a :class:`~agentgrad.Model`.
"""

from agentgrad.surrogate.data import (
    Ramifications,
    agent_graph_inputs,
    concatenate_ramifications,
    ramifications,
)
from agentgrad.surrogate.gdn import GDN, GNNOnly, Schedule, load_gdn, save_gdn
from agentgrad.surrogate.model import GDNSurrogate, ScoredState, with_score
from agentgrad.surrogate.train import train_gdn
from agentgrad.surrogate.view import AgentView, features, require_agent_view

__all__ = [
    "GDN",
    "AgentView",
    "GDNSurrogate",
    "GNNOnly",
    "Ramifications",
    "Schedule",
    "ScoredState",
    "agent_graph_inputs",
    "concatenate_ramifications",
    "features",
    "load_gdn",
    "ramifications",
    "require_agent_view",
    "save_gdn",
    "train_gdn",
    "with_score",
]
