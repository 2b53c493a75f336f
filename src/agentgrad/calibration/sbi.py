"""Simulation-based inference through the ``sbi`` package (optional extra ``agentgrad[sbi]``).

Methods (each a small frozen object with its settings; :func:`calibrate` runs them):

* :class:`NPE`, :class:`SNPE` — neural posterior estimation (SNPE-C/APT over ``rounds``);
* :class:`NLE`, :class:`SNLE` — neural likelihood estimation, posterior by MCMC;
* :class:`NRE` — neural ratio estimation (NRE-C), posterior by MCMC;
* :class:`SNVI` — sequential NLE with a variational posterior trained on the Rényi-α
  bound (``alpha=0.1``, sticking-the-landing, two rounds: the SNVLI of
  `ad-vs-sbi-for-abms` §3 and App. B);
* :class:`ABC` — sequential Monte Carlo ABC (Beaumont et al. 2009), L2 distance on
  z-scored summaries.

The bridge: parameters drawn by ``sbi`` (torch) become NumPy, the JAX model simulates
them in vmapped chunks (:meth:`~agentgrad.calibration.problem.Problem.simulate`), and
the summary goes back as a float32 tensor.  The summary is the observed series of the
chosen ``observables`` (default: all) at steps ``>= first_step`` (default 1: the initial
state is usually fixed), minus coordinates that did not vary in the first round and
observables that are linear functions of the others at the same step (``S = N - I - R``;
the later-listed is dropped), so that a likelihood of the summary is not degenerate
(`ad-vs-sbi` digest §A.9).  A budget of ``B`` runs is split evenly over the rounds.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from agentgrad.calibration.gvi import progress_bar
from agentgrad.calibration.posterior import CalibratedPosterior
from agentgrad.errors import AgentgradError
from agentgrad.params import Beta, LogNormal, Normal, Uniform

INSTALL_HINT = 'simulation-based inference needs the sbi extra: pip install "agentgrad[sbi]"'


def require_sbi():
    """Import ``torch`` and ``sbi`` or raise a one-line install hint."""
    try:
        import sbi  # noqa: F401
        import torch
    except ImportError:
        raise AgentgradError(INSTALL_HINT) from None
    return torch


def torch_prior(space, names: Sequence[str]):
    """The product of the calibrated parameters' priors as a torch distribution."""
    torch = require_sbi()
    from sbi.utils import MultipleIndependent
    from torch import distributions as td

    def one(prior):
        t = lambda v: torch.tensor([float(v)])  # noqa: E731
        if isinstance(prior, Uniform):
            return td.Uniform(t(prior.low), t(prior.high))
        if isinstance(prior, Normal):
            return td.Normal(t(prior.loc), t(prior.scale))
        if isinstance(prior, LogNormal):
            return td.LogNormal(t(prior.loc), t(prior.scale))
        if isinstance(prior, Beta):
            return td.Beta(t(prior.a), t(prior.b))
        raise AgentgradError(
            f"sbi methods support Uniform, Normal, LogNormal and Beta priors, "
            f"not {type(prior).__name__}"
        )

    return MultipleIndependent([one(space[n].prior) for n in names], validate_args=False)


@dataclass
class Summary:
    """Which observables and steps go to sbi, and which coordinates were kept."""

    observables: list[str]
    first_step: int
    keep: np.ndarray | None = None  # boolean mask over the flattened coordinates

    def flatten(self, series: dict[str, np.ndarray]) -> np.ndarray:
        x = np.concatenate(
            [np.asarray(series[n])[..., self.first_step :] for n in self.observables], axis=-1
        )
        return x if self.keep is None else x[..., self.keep]

    def choose(self, runs: dict[str, np.ndarray]) -> None:
        """Drop dependent observables and constant coordinates, from first-round runs."""
        per_step = np.stack(
            [np.asarray(runs[n])[:, self.first_step :] for n in self.observables], -1
        )  # (n, T', K)
        centred = (per_step - per_step.mean(0)).reshape(-1, per_step.shape[-1])
        kept: list[int] = []
        for k in range(len(self.observables)):  # the earlier-listed are kept
            trial = centred[:, [*kept, k]]
            scale = np.abs(trial).max(0)
            trial = trial / np.where(scale > 0, scale, 1)
            if np.linalg.matrix_rank(trial, tol=1e-5 * np.sqrt(len(trial))) == len(kept) + 1:
                kept.append(k)
        self.observables = [self.observables[k] for k in sorted(kept)]
        x = self.flatten(runs)
        self.keep = x.std(0) > 1e-9 * (np.abs(x).max() + 1e-30)
        if not self.keep.any():
            raise AgentgradError("every simulated summary was constant: nothing to infer from")


@dataclass(frozen=True)
class _SBIMethod:
    """Settings shared by the sbi methods."""

    rounds: int = 1
    observables: tuple[str, ...] | None = None
    first_step: int = 1
    density_estimator: str = "maf"
    training_batch_size: int = 200
    learning_rate: float = 5e-4
    chunk: int = 256

    min_runs_per_round = 20

    def __post_init__(self) -> None:
        if not (isinstance(self.rounds, int) and self.rounds >= 1):
            raise AgentgradError(f"rounds must be a positive integer, got {self.rounds}")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise AgentgradError(f"learning_rate must be positive and finite: {self.learning_rate}")

    def minimum_budget(self) -> int:
        return self.rounds * self.min_runs_per_round

    def _summary(self, problem) -> Summary:
        names = list(self.observables or problem.observed)
        unknown = [n for n in names if n not in problem.observed]
        if unknown:
            raise AgentgradError(f"summary observable {unknown[0]!r} is not in the observed data")
        if not 0 <= self.first_step < problem.n_steps:
            raise AgentgradError(f"first_step must be in [0, {problem.n_steps - 1}]")
        return Summary(names, self.first_step)

    def fit(self, problem, key, *, budget=None, progress=False) -> SBIPosterior:
        torch = require_sbi()
        budget = budget if budget is not None else self.default_budget
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        torch.manual_seed(seed)
        prior = torch_prior(problem.space, problem.names)
        summary = self._summary(problem)
        x_o = None
        per_round = [budget // self.rounds] * self.rounds
        per_round[-1] += budget - sum(per_round)
        history: dict[str, Any] = {"rounds": [], "method": type(self).__name__}
        state = self._start(prior)
        proposal = prior
        for r, n in enumerate(per_round):
            theta = proposal.sample((n,)) if r == 0 else self._propose(proposal, n, x_o)
            runs = _simulate(problem, theta, jax.random.fold_in(key, r), self.chunk, progress)
            if r == 0:
                summary.choose(runs)
                x_o = torch.as_tensor(summary.flatten(problem.observed)[None], dtype=torch.float32)
            x = torch.as_tensor(summary.flatten(runs), dtype=torch.float32)
            with contextlib.redirect_stdout(io.StringIO()):  # sbi prints training summaries
                proposal = self._round(state, prior, theta, x, x_o, proposal, r)
            history["rounds"].append(n)
        history["simulations"] = problem.runs
        history["summary"] = {"observables": summary.observables, "first_step": self.first_step}
        return SBIPosterior(
            proposal, x_o, problem.model, list(problem.names), history, problem.space
        )

    default_budget = 1000

    def _start(self, prior):
        raise NotImplementedError

    def _propose(self, posterior, n, x_o):
        return posterior.sample((n,), x=x_o, show_progress_bars=False)

    def _train_kwargs(self) -> dict:
        return {
            "training_batch_size": self.training_batch_size,
            "learning_rate": self.learning_rate,
            "show_train_summary": False,
        }


def _simulate(problem, theta, key, chunk, progress) -> dict[str, np.ndarray]:
    values = np.asarray(theta.detach().cpu().numpy(), np.float32)
    rows = {n: values[:, i] for i, n in enumerate(problem.names)}
    with progress_bar(progress, len(values), "simulating") as bar:
        return problem.simulate(rows, key, chunk, progress=lambda done: bar(done, f"{done} runs"))


@dataclass(frozen=True)
class NPE(_SBIMethod):
    """Neural posterior estimation (SNPE-C / APT when ``rounds > 1``)."""

    def _start(self, prior):
        from sbi.inference import NPE as _NPE

        return _NPE(prior, density_estimator=self.density_estimator, show_progress_bars=False)

    def _round(self, inference, prior, theta, x, x_o, proposal, r):
        inference.append_simulations(theta, x, proposal=proposal)
        estimator = inference.train(**self._train_kwargs())
        return inference.build_posterior(estimator).set_default_x(x_o)


@dataclass(frozen=True)
class SNPE(NPE):
    """Sequential NPE: ``rounds`` rounds, each proposing from the last posterior."""

    rounds: int = 2


@dataclass(frozen=True)
class NLE(_SBIMethod):
    """Neural likelihood estimation; the posterior is sampled by MCMC (slice sampling)."""

    def _start(self, prior):
        from sbi.inference import NLE as _NLE

        return _NLE(prior, density_estimator=self.density_estimator, show_progress_bars=False)

    def _round(self, inference, prior, theta, x, x_o, proposal, r):
        estimator = inference.append_simulations(theta, x).train(**self._train_kwargs())
        return self._posterior(inference, estimator, x_o)

    def _posterior(self, inference, estimator, x_o):
        from sbi.inference.posteriors.posterior_parameters import MCMCPosteriorParameters

        settings = MCMCPosteriorParameters(num_chains=20, thin=2, warmup_steps=50)
        return inference.build_posterior(estimator, posterior_parameters=settings).set_default_x(
            x_o
        )


@dataclass(frozen=True)
class SNLE(NLE):
    """Sequential NLE over ``rounds`` rounds."""

    rounds: int = 2


@dataclass(frozen=True)
class NRE(NLE):
    """Neural ratio estimation (NRE-C); the posterior is sampled by MCMC."""

    density_estimator: str = "resnet"

    def _start(self, prior):
        from sbi.inference import NRE as _NRE

        return _NRE(prior, classifier=self.density_estimator, show_progress_bars=False)


@dataclass(frozen=True)
class SNVI(NLE):
    """SNVLI: sequential NLE with a variational posterior on the Rényi-α bound.

    Defaults follow `ad-vs-sbi-for-abms` App. B: ``alpha=0.1``, sticking the landing,
    two rounds; the VI settings otherwise sbi's (``vi_learning_rate=1e-3``,
    ``vi_iterations`` up to 2000).
    """

    rounds: int = 2
    alpha: float = 0.1
    stick_the_landing: bool = True
    vi_learning_rate: float = 1e-3
    vi_iterations: int = 2000

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (np.isfinite(self.alpha) and 0 < self.alpha < 1):
            raise AgentgradError(f"SNVI alpha must be in (0, 1), got {self.alpha}")

    def _posterior(self, inference, estimator, x_o):
        from sbi.inference.posteriors.posterior_parameters import VIPosteriorParameters

        settings = VIPosteriorParameters(vi_method="alpha")
        posterior = inference.build_posterior(estimator, posterior_parameters=settings)
        return posterior.set_default_x(x_o).train(
            alpha=self.alpha,
            stick_the_landing=self.stick_the_landing,
            learning_rate=self.vi_learning_rate,
            max_num_iters=self.vi_iterations,
            show_progress_bar=False,
            quality_control=False,
        )


@dataclass(frozen=True)
class ABC(_SBIMethod):
    """Sequential Monte Carlo ABC (sbi's SMCABC, variant C; Beaumont et al. 2009).

    ``particles`` per population, the first population drawn from ``initial`` prior
    samples, acceptance threshold decayed by ``epsilon_decay`` per population, until
    the budget is spent; distances are Euclidean on summaries z-scored by the initial
    population.  The posterior is the last population (a KDE for ``log_prob``).
    """

    particles: int = 100
    initial: int = 500
    epsilon_decay: float = 0.5
    pilot = 50  # prior runs choosing the summary and its z-scores

    def minimum_budget(self) -> int:
        return self.pilot + self.initial + self.particles

    def fit(self, problem, key, *, budget=None, progress=False) -> SBIPosterior:
        torch = require_sbi()
        from sbi.inference import SMCABC

        budget = budget if budget is not None else 5 * self.initial
        torch.manual_seed(int(jax.random.randint(key, (), 0, 2**31 - 1)))
        prior = torch_prior(problem.space, problem.names)
        summary = self._summary(problem)
        pilot = _simulate(problem, prior.sample((self.pilot,)), key, self.chunk, False)
        summary.choose(pilot)
        scale = summary.flatten(pilot).std(0)
        scale = np.where(scale > 0, scale, 1.0)
        calls = itertools.count(1)

        def simulator(theta):
            k = jax.random.fold_in(key, next(calls))
            runs = _simulate(problem, theta, k, self.chunk, False)
            return torch.as_tensor(summary.flatten(runs) / scale, dtype=torch.float32)

        x_o = summary.flatten(problem.observed)[None] / scale
        smc = SMCABC(simulator, prior, simulation_batch_size=self.chunk, show_progress_bars=False)
        particles = smc(
            torch.as_tensor(x_o, dtype=torch.float32),
            num_particles=self.particles,
            num_initial_pop=self.initial,
            num_simulations=budget - self.pilot,
            epsilon_decay=self.epsilon_decay,
        )
        history = {
            "method": "ABC",
            "simulations": problem.runs,
            "summary": {"observables": summary.observables, "first_step": self.first_step},
        }
        return SBIPosterior(
            Particles(particles), None, problem.model, list(problem.names), history, problem.space
        )


@dataclass
class Particles:
    """An equally weighted sample (the last ABC population); no density."""

    values: Any

    def sample(self, shape, **_):
        torch = require_sbi()
        index = torch.randint(0, len(self.values), shape)
        return self.values[index]

    def log_prob(self, theta, **_):
        raise AgentgradError("ABC posteriors are samples; they have no density (log_prob)")


@dataclass
class SBIPosterior(CalibratedPosterior):
    """A posterior from ``sbi`` (torch), behind the common interface."""

    posterior: Any
    x_o: Any
    model: Any
    names: list[str]
    history: dict[str, Any] = field(default_factory=dict)
    space: Any = None
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def _kwargs(self) -> dict:
        if self.x_o is None:  # a KDE (ABC)
            return {}
        return {"x": self.x_o}

    def sample(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
        torch = require_sbi()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(int(jax.random.randint(key, (), 0, 2**31 - 1)))
        try:
            extra = {} if self.x_o is None else {"show_progress_bars": False}
            values = self.posterior.sample((n,), **self._kwargs(), **extra)
        finally:
            torch.random.set_rng_state(generator_state)
        values = np.asarray(values.detach().cpu().numpy(), np.float32)
        return {name: jnp.asarray(values[:, i]) for i, name in enumerate(self.names)}

    def log_prob(self, theta) -> jax.Array:
        torch = require_sbi()
        rows = np.stack([np.asarray(theta[n], np.float32) for n in self.names], -1)
        value = self.posterior.log_prob(
            torch.as_tensor(rows.reshape(-1, len(self.names))), **self._kwargs()
        )
        return jnp.asarray(value.detach().cpu().numpy()).reshape(rows.shape[:-1])

    def save(self, path: str | os.PathLike) -> None:
        """Pickle the sbi posterior with torch (``load`` needs the sbi extra too)."""
        torch = require_sbi()
        torch.save(
            {
                "posterior": self.posterior,
                "x_o": self.x_o,
                "names": self.names,
                "history": self.history,
            },
            os.fspath(path),
        )

    @classmethod
    def load(cls, path: str | os.PathLike, model) -> SBIPosterior:
        torch = require_sbi()
        try:
            blob = torch.load(os.fspath(path), weights_only=False)
        except (OSError, RuntimeError, ValueError) as err:
            raise AgentgradError(f"cannot read posterior {path}: {err}") from None
        return cls(blob["posterior"], blob["x_o"], model, blob["names"], blob["history"])


METHODS = {"npe": NPE, "nle": NLE, "nre": NRE, "snpe": SNPE, "snle": SNLE, "snvi": SNVI, "abc": ABC}
