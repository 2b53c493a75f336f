"""The model library, and the registry behind ``agentgrad models`` / ``agentgrad run``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agentgrad.engine import Model
from agentgrad.estimators import Estimator
from agentgrad.models.amof import AMOF, AMOF_PARAMS
from agentgrad.models.ode import sir_mean_field, sir_ode
from agentgrad.models.predator_prey import PREDATOR_PREY_PARAMS, PRESETS, PredatorPrey, preset
from agentgrad.models.schelling import SCHELLING_PARAMS, Schelling
from agentgrad.models.schelling_agents import SCHELLING_AGENTS_PARAMS, XI, SchellingAgents
from agentgrad.models.seirm import SEIRM, SEIRM_PARAMS
from agentgrad.models.sir_network import SIR_NETWORK_PARAMS, SIRNetwork, SIRState
from agentgrad.models.sirs_grid import SIRS_GRID_PARAMS, SIRSGrid
from agentgrad.models.sugarscape import SUGARSCAPE_PARAMS, Sugarscape
from agentgrad.params import ParamSpace
from agentgrad.spaces.graphs import parse_graph


@dataclass(frozen=True)
class BuildOptions:
    """Structural options given on the command line (``None`` = model default)."""

    estimator: Estimator
    seed: int = 0
    agents: int | None = None
    graph: str | None = None
    grid_size: int | None = None
    population: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """A runnable model: its command-line name, parameters and how to build it."""

    name: str
    summary: str
    param_space: ParamSpace
    default_steps: int
    options: tuple[str, ...]
    build: Callable[[BuildOptions], Model]
    presets: dict[str, dict[str, float]] = field(default_factory=dict)
    model_class: type | None = None
    default_estimator: str = "st"  # the command line's estimator when --estimator is not given

    @property
    def observable_units(self) -> dict[str, str]:
        """Observable name -> unit, as the model class declares them."""
        return dict(getattr(self.model_class, "observable_units", {}) or {})


def _build_sir_network(o: BuildOptions) -> SIRNetwork:
    import jax

    graph = parse_graph(o.graph or "erdos-renyi:10", o.agents, jax.random.key(o.seed), 10_000)
    return SIRNetwork(graph=graph, estimator=o.estimator)


def _build_sirs_grid(o: BuildOptions) -> SIRSGrid:
    size = o.grid_size or 40
    agents = o.agents if o.agents is not None else min(1280, size * size)
    n_inf, n_rec = (160, 80) if agents == 1280 else (agents // 8, agents // 16)
    return SIRSGrid(size, agents, n_inf, n_rec, estimator=o.estimator)


def _build_amof(o: BuildOptions) -> AMOF:
    return AMOF(n_agents=o.agents or 1000)


def _build_sugarscape(o: BuildOptions) -> Sugarscape:
    size = o.grid_size or 50
    agents = o.agents if o.agents is not None else min(400, size * size // 4)
    return Sugarscape(size, agents, estimator=o.estimator)


def _build_seirm(o: BuildOptions) -> SEIRM:
    from agentgrad.models.population import load_population, synthetic_population

    if o.population is not None:
        if o.agents is not None or o.graph is not None:
            raise ValueError("--population already fixes the agents and contacts")
        population = load_population(o.population)
    else:
        import jax

        n = o.agents or 10_000
        mean_degree = 10.0
        if o.graph is not None:
            name, _, arg = o.graph.partition(":")
            if name != "erdos-renyi" or not arg:
                raise ValueError(
                    "seirm: --graph must be erdos-renyi:MEAN_DEGREE (or use --population)"
                )
            mean_degree = float(arg)
        population = synthetic_population(n, mean_degree, key=jax.random.key(o.seed))
    return SEIRM(population, estimator=o.estimator)


def _build_predator_prey(o: BuildOptions) -> PredatorPrey:
    size = o.grid_size or 32
    agents = o.agents if o.agents is not None else 2 * size * size
    return PredatorPrey(size, agents, estimator=o.estimator)


def _build_schelling(o: BuildOptions) -> Schelling:
    size = o.grid_size or 51
    agents = o.agents if o.agents is not None else int(0.75 * size * size)
    return Schelling(size, agents)


REGISTRY: dict[str, ModelEntry] = {
    "sir-network": ModelEntry(
        "sir-network",
        "SIR epidemic on a contact network with quarantine and social distancing",
        SIR_NETWORK_PARAMS,
        60,
        ("agents", "graph", "estimator"),
        _build_sir_network,
        model_class=SIRNetwork,
    ),
    "sirs-grid": ModelEntry(
        "sirs-grid",
        "spatial SIRS on a grid with von Neumann infection",
        SIRS_GRID_PARAMS,
        20,
        ("agents", "grid_size", "estimator"),
        _build_sirs_grid,
        model_class=SIRSGrid,
        default_estimator="gs:0.05",  # the paper's (ad-vs-sbi Table 1)
    ),
    "amof": ModelEntry(
        "amof",
        "Axtell's model of firms: argmax firm choice with a softmax tangent",
        AMOF_PARAMS,
        30,
        ("agents",),
        _build_amof,
        model_class=AMOF,
    ),
    "sugarscape": ModelEntry(
        "sugarscape",
        "Sugarscape: random-order foraging on a two-peak torus, death by hunger",
        SUGARSCAPE_PARAMS,
        50,
        ("agents", "grid_size", "estimator"),
        _build_sugarscape,
        model_class=Sugarscape,
    ),
    "seirm": ModelEntry(
        "seirm",
        "SEIRM epidemic with two-dose vaccination on a contact network (synthetic or files)",
        SEIRM_PARAMS,
        60,
        ("agents", "graph", "population", "estimator"),
        _build_seirm,
        model_class=SEIRM,
    ),
    "predator-prey": ModelEntry(
        "predator-prey",
        "predator-prey with life phases, parent links and Psi transition tables (--preset)",
        PREDATOR_PREY_PARAMS,
        30,
        ("agents", "grid_size", "estimator"),
        _build_predator_prey,
        {name: preset(name) for name in PRESETS},
        model_class=PredatorPrey,
    ),
    "schelling": ModelEntry(
        "schelling",
        "Schelling segregation on a torus (relocation with conflict resolution)",
        SCHELLING_PARAMS,
        20,
        ("agents", "grid_size"),
        _build_schelling,
        model_class=Schelling,
    ),
    "schelling-agents": ModelEntry(
        "schelling-agents",
        "Schelling with individual agents, the GDN reference code's rules (--preset xi1..xi3)",
        SCHELLING_AGENTS_PARAMS,
        25,
        (),
        lambda o: SchellingAgents(),
        {name: {"threshold": xi} for name, xi in XI.items()},
        model_class=SchellingAgents,
    ),
}

__all__ = [
    "AMOF",
    "PredatorPrey",
    "REGISTRY",
    "BuildOptions",
    "ModelEntry",
    "SIRNetwork",
    "Schelling",
    "SchellingAgents",
    "SIRSGrid",
    "SEIRM",
    "SIRState",
    "Sugarscape",
    "sir_mean_field",
    "sir_ode",
]
