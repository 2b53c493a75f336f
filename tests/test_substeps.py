"""Models assembled from substeps: equal to hand-written steps, SEIRM pinned to its
pre-substep numbers, swapping one substep, gradients into neural substeps and per-agent
arrays (float64 finite differences), one-line errors."""

from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.models import SEIRM
from agentgrad.models.population import (
    AGE_PYRAMID,
    N_AGE_GROUPS,
    Population,
    synthetic_population,
)
from agentgrad.models.seirm import SIRSProgression
from agentgrad.params import Param, ParamSpace, real_dtype

DATA = Path(__file__).parent / "data"
SIR_PARAMS = ParamSpace({"beta": Param(0.5, 0.0, 5.0), "gamma": Param(0.1, 0.0, 1.0)})


def _initial(n: int) -> dict:
    i = (jnp.arange(n) < 3).astype(real_dtype())
    return {"s": 1.0 - i, "i": i, "r": jnp.zeros(n, real_dtype())}


def _sir_observe(state, params, t):
    return {"infected": jnp.sum(state["i"]), "recovered": jnp.sum(state["r"])}


class HandSIR(ag.Model):
    """Infection then recovery, written as one step function."""

    n: int = eqx.field(static=True)
    estimator: ag.Estimator = ag.StraightThrough()

    @property
    def param_space(self):
        return SIR_PARAMS

    def init(self, params, key):
        return _initial(self.n)

    def step(self, state, params, key, t):
        k_inf, k_rec = jax.random.split(key)
        force = params["beta"] * jnp.sum(state["i"]) / self.n
        new = ag.bernoulli(k_inf, -jnp.expm1(-force), self.estimator, (self.n,)) * state["s"]
        s, i = state["s"] - new, state["i"] + new
        p_rec = -jnp.expm1(-params["gamma"])
        rec = ag.bernoulli(k_rec, p_rec, self.estimator, (self.n,)) * i
        return {"s": s, "i": i - rec, "r": state["r"] + rec}

    observe = staticmethod(_sir_observe)


class Infection(ag.Substep):
    name: ClassVar[str] = "infection"
    estimator: ag.Estimator

    def observe(self, state, params, t):
        return jnp.mean(state["i"])

    def transition(self, state, prevalence, params, key, t):
        p = -jnp.expm1(-params["beta"] * prevalence)
        new = ag.bernoulli(key, p, self.estimator, state["s"].shape) * state["s"]
        return {"s": state["s"] - new, "i": state["i"] + new}


class Recovery(ag.Substep):
    name: ClassVar[str] = "recovery"
    estimator: ag.Estimator

    def transition(self, state, action, params, key, t):
        p = -jnp.expm1(-params["gamma"])
        rec = ag.bernoulli(key, p, self.estimator, state["i"].shape) * state["i"]
        return {"i": state["i"] - rec, "r": state["r"] + rec}


class SubstepSIR(ag.SubstepModel):
    n: int = eqx.field(static=True)
    own_params: ClassVar[ParamSpace] = SIR_PARAMS

    def init(self, params, key):
        return _initial(self.n)

    observe = staticmethod(_sir_observe)


def test_substep_model_equals_the_hand_written_step():
    est = ag.StraightThrough()
    composite = SubstepSIR(substeps=(Infection(est), Recovery(est)), n=200)
    hand = HandSIR(200, est)
    key = jax.random.key(4)
    a = ag.simulate(composite, None, key, 30).observables
    b = ag.simulate(hand, None, key, 30).observables
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert float(a["recovered"][-1]) > 20  # an epidemic happened
    ga = jax.grad(lambda p: ag.simulate(composite, p, key, 30).observables["recovered"][-1])
    gb = jax.grad(lambda p: ag.simulate(hand, p, key, 30).observables["recovered"][-1])
    p = SIR_PARAMS.defaults()
    for name, value in ga(p).items():
        np.testing.assert_allclose(value, gb(p)[name], rtol=1e-6)


def _seirm_outputs(model):
    """The computation pinned in tests/data/seirm_pinned.npz (written by the one-function
    SEIRM before it was split into substeps)."""
    params = {
        "transmission": 0.3,
        "initial_infected": 0.05,
        "mortality": 5.0,
        "vaccination_rate": 0.05,
        "second_dose_delay": 5.0,
    }
    key = jax.random.key(3)
    out = {f"obs_{k}": v for k, v in ag.simulate(model, params, key, 30).observables.items()}

    def f(p):
        obs = ag.simulate(model, p, key, 30).observables
        return obs["dead"][-1] + obs["infected"].sum()

    grads = jax.grad(f)(model.param_space.complete(params))
    out.update({f"grad_{k}": v for k, v in grads.items()})
    return out


def test_seirm_substeps_keep_the_pinned_trajectory_and_gradients():
    # the pinned population's contacts were drawn by erdos_renyi's "pairs" method (the
    # default before "skip"); synthetic_population's generator draws that graph's seed
    # after the ages
    rng = np.random.default_rng(0)
    rng.choice(N_AGE_GROUPS, size=400, p=np.asarray(AGE_PYRAMID) / sum(AGE_PYRAMID))
    rng.random(400)
    seed = int(rng.integers(2**31))
    pinned_graph = ag.graphs.erdos_renyi(400, 10.0, key=seed, method="pairs")
    model = SEIRM(Population(synthetic_population(400, key=0).ages, pinned_graph))
    assert [s.name for s in model.substeps] == ["vaccination", "transmission", "progression"]
    pinned = np.load(DATA / "seirm_pinned.npz")
    out = _seirm_outputs(model)
    assert set(out) == set(pinned.files)
    for name in pinned.files:
        np.testing.assert_allclose(out[name], pinned[name], rtol=1e-5, err_msg=name)


def test_swapping_the_progression_changes_exactly_that_behaviour():
    """SEIRM with the progression swapped for SIRS: with the new behaviour switched off
    (no waning) and the old one too (no deaths) the trajectories are equal; with waning,
    recovered agents become susceptible again and nobody dies, while the vaccination and
    transmission substeps draw the same numbers as before."""
    seirm = SEIRM(synthetic_population(400, key=0))
    sirs = seirm.with_substep("progression", SIRSProgression(seirm.estimator))
    assert [s.name for s in sirs.substeps] == ["vaccination", "transmission", "progression"]
    assert "waning_rate" in sirs.param_space and "waning_rate" not in seirm.param_space
    base = {"transmission": 0.3, "initial_infected": 0.05, "vaccination_rate": 0.02}
    key = jax.random.key(1)
    a = ag.simulate(seirm, {**base, "mortality": 0.0}, key, 40, save_every=1)
    b = ag.simulate(sirs, {**base, "waning_rate": 0.0}, key, 40, save_every=1)
    for name in a.observables:
        np.testing.assert_array_equal(a.observables[name], b.observables[name])

    a = ag.simulate(seirm, {**base, "mortality": 8.0}, key, 40, save_every=1)
    b = ag.simulate(sirs, {**base, "waning_rate": 0.2}, key, 40, save_every=1)
    sus_a, sus_b = np.asarray(a.states.stage[:, 0]), np.asarray(b.states.stage[:, 0])
    assert np.all(np.diff(sus_a, axis=0) <= 0)  # SEIRM: nobody becomes susceptible again
    assert np.any(np.diff(sus_b, axis=0) > 0)  # SIRS: immunity wanes
    assert float(a.observables["dead"][-1]) > 0 and float(np.max(b.observables["dead"])) == 0
    # step 1: progression runs last, so vaccination and exposures are unchanged
    np.testing.assert_array_equal(a.states.dose1[0], b.states.dose1[0])
    np.testing.assert_array_equal(a.states.exposures[0], b.states.exposures[0])


class NeuralAdoption(ag.Substep):
    """Agents on a ring adopt with probability sigmoid(net(own, neighbours) + bias_i)."""

    name: ClassVar[str] = "adoption"
    net: eqx.nn.MLP
    bias: jax.Array
    estimator: ag.Estimator

    def observe(self, state, params, t):
        x = state["x"]
        return jnp.stack([x, 0.5 * (jnp.roll(x, 1) + jnp.roll(x, -1))], axis=1)

    def policy(self, observation, state, params, key, t):
        logits = jax.vmap(self.net)(observation)[:, 0] + self.bias
        return ag.bernoulli(key, jax.nn.sigmoid(logits), self.estimator)

    def transition(self, state, adopt, params, key, t):
        return {"x": 0.5 * state["x"] + 0.5 * adopt}


class Adoption(ag.SubstepModel):
    n: int = eqx.field(static=True)

    def init(self, params, key):
        return {"x": jax.random.uniform(key, (self.n,), real_dtype())}

    def observe(self, state, params, t):
        return {"mean": jnp.mean(state["x"])}


def adoption_model(n: int = 12, estimator=None, seed: int = 0) -> Adoption:
    key = jax.random.key(seed)
    estimator = ag.StraightThrough() if estimator is None else estimator
    net = eqx.nn.MLP(2, 1, 4, 1, key=key, dtype=real_dtype())
    bias = jnp.linspace(-1.0, 1.0, n, dtype=real_dtype())
    return Adoption(substeps=(NeuralAdoption(net, bias, estimator),), n=n)


def test_gradients_reach_network_weights_and_per_agent_parameters():
    """Relaxed draws (GumbelSoftmax, hard=False) make the run a smooth function of the
    weights for a fixed key: AD equals central finite differences (float64, step 1e-6,
    rtol 1e-5)."""
    with jax.enable_x64(True):
        model = adoption_model(estimator=ag.GumbelSoftmax(0.5, hard=False))
        key = jax.random.key(2)

        def loss(m):
            return ag.simulate(m, None, key, 6).observables["mean"][-1]

        grads = eqx.filter_grad(loss)(model)
        sub = grads.substep("adoption")
        where_fns = {
            "weight": lambda m: m.substeps[0].net.layers[0].weight,
            "bias": lambda m: m.substeps[0].bias,
        }
        ad_values = {"weight": sub.net.layers[0].weight, "bias": sub.bias}
        for name, where in where_fns.items():
            base = where(model)
            for index in [(0,) * base.ndim, (base.shape[0] - 1,) + (0,) * (base.ndim - 1)]:
                h = 1e-6

                def shifted(delta, where=where, base=base, index=index):
                    return loss(eqx.tree_at(where, model, base.at[index].add(delta)))

                fd = (shifted(h) - shifted(-h)) / (2 * h)
                ad = ad_values[name][index]
                assert abs(float(ad)) > 1e-6, (name, index)
                np.testing.assert_allclose(float(ad), float(fd), rtol=1e-5, err_msg=name)


class WritesUnknownField(ag.Substep):
    name: ClassVar[str] = "bad"

    def transition(self, state, action, params, key, t):
        return {"y": state["x"]}


class WritesWrongShape(ag.Substep):
    name: ClassVar[str] = "net-output"

    def transition(self, state, action, params, key, t):
        return {"x": jnp.zeros((3, 1), real_dtype())}


class WritesWrongDtype(ag.Substep):
    name: ClassVar[str] = "ints"

    def transition(self, state, action, params, key, t):
        return {"x": jnp.zeros(state["x"].shape, jnp.int32)}


@pytest.mark.parametrize(
    "substep, message",
    [
        (WritesUnknownField(), "substep 'bad' writes state field 'y', which the state does not"),
        (WritesWrongShape(), r"'x' with shape \(3, 1\), but the field has shape \(12,\)"),
        (WritesWrongDtype(), "writes state field 'x' as int32, but the field is float32"),
    ],
)
def test_bad_substeps_are_one_line_errors(substep, message):
    model = Adoption(substeps=(substep,), n=12)
    with pytest.raises(ag.AgentgradError, match=message) as err:
        ag.simulate(model, None, jax.random.key(0), 3)
    assert "\n" not in str(err.value)


def test_substep_lookup_and_replacement_errors():
    model = adoption_model()
    with pytest.raises(ag.AgentgradError, match="no substep named 'nope'; substeps are: adoption"):
        model.with_substep("nope", WritesUnknownField())
    with pytest.raises(ag.AgentgradError, match="substep names must be unique"):
        Adoption(substeps=(WritesUnknownField(), WritesUnknownField()), n=3)
    clash = type(
        "Clash",
        (WritesUnknownField,),
        {"param_space": ParamSpace({"beta": Param(0.2, 0.0, 1.0)}), "name": "clash"},
    )
    sir = SubstepSIR(substeps=(Infection(ag.StraightThrough()), clash()), n=5)
    with pytest.raises(ag.AgentgradError, match="declares parameter 'beta' differently"):
        sir.param_space  # noqa: B018


def test_weekly_transmission_and_delayed_vaccination_substeps():
    """Constant weekly rates equal the scalar parameter and a start on day 0 equals plain
    vaccination (same trajectories); a start on day 10 gives no doses before day 10."""
    from agentgrad.models.seirm import DelayedVaccination, WeeklyTransmission
    from agentgrad.training import drive

    seirm = SEIRM(synthetic_population(300, key=1))
    params = {"transmission": 0.3, "initial_infected": 0.05, "vaccination_rate": 0.05}
    key = jax.random.key(2)
    plain = ag.simulate(seirm, params, key, 21, save_every=1)
    weekly = WeeklyTransmission.replacing(seirm.substep("transmission"), jnp.full(3, 0.3))
    by_week = ag.simulate(seirm.with_substep("transmission", weekly), params, key, 21)
    delayed = seirm.with_substep("vaccination", DelayedVaccination(seirm.estimator))
    from_zero = ag.simulate(delayed, params, key, 21)
    for name in plain.observables:
        np.testing.assert_array_equal(by_week.observables[name], plain.observables[name])
        np.testing.assert_array_equal(from_zero.observables[name], plain.observables[name])
    late = ag.simulate(delayed, {**params, "vaccination_start": 10.0}, key, 21, save_every=1)
    doses = np.asarray(late.states.dose1.sum(axis=1))
    assert doses[9] == 0 and doses[-1] > 0  # states[t] is after step t (day t)

    rates = lambda m: m.substep("transmission").weekly  # noqa: E731
    model = seirm.with_substep("transmission", weekly)
    with pytest.raises(ag.AgentgradError, match=r"shape \(3,\) with a value of shape \(4, 1\)"):
        drive(model, rates, jnp.zeros((4, 1)))
    np.testing.assert_array_equal(rates(drive(model, rates, jnp.ones(3))), 1.0)
