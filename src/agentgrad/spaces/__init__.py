"""Spaces agents live in: contact graphs and grids."""

from agentgrad.spaces import graphs
from agentgrad.spaces.graphs import Graph
from agentgrad.spaces.grid import Grid

__all__ = ["Graph", "Grid", "graphs"]
