"""Graph Diffusion Network surrogates: agent views, ramification datasets, the noise
schedule and sampler against closed forms, learning a known stochastic rule, rollouts as
a Model, save / load, and bad input."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.errors import AgentgradError
from agentgrad.models import PredatorPrey, Schelling, SIRNetwork
from agentgrad.models.predator_prey import ALIVE, PREGNANT, PredatorPreyState
from agentgrad.params import Param, ParamSpace
from agentgrad.surrogate import (
    GDN,
    GDNSurrogate,
    GNNOnly,
    Ramifications,
    Schedule,
    agent_graph_inputs,
    load_gdn,
    ramifications,
    save_gdn,
    train_gdn,
)
from agentgrad.surrogate.evaluate import (
    ar1_forecast,
    categorical_emd,
    macro_smape,
    micro_emd,
    ordinal_emd,
)


class Flip(ag.Model):
    """Agents on a ring; an Off agent turns On with probability ``p``, On stays On."""

    n_agents: int = eqx.field(static=True, default=64)

    @property
    def param_space(self):
        return ParamSpace({"p": Param(0.3, 0.0, 1.0)})

    def init(self, params, key):
        return jnp.zeros(self.n_agents)

    def step(self, s, params, key, t):
        draw = jax.random.bernoulli(key, params["p"], s.shape).astype(s.dtype)
        return jnp.where(s > 0, 1.0, draw)

    def observe(self, s, params, t):
        return {"on": jnp.sum(s)}

    def agent_features(self, s):
        return jnp.zeros((s.shape[0], 0)), jnp.stack([1 - s, s], 1)

    def neighbour_sum(self, s, x):
        return jnp.roll(x, 1, 0) + jnp.roll(x, -1, 0)

    def with_dynamic(self, s, d):
        hard = jax.nn.one_hot(jnp.argmax(d, 1), 2)
        return (hard + d - jax.lax.stop_gradient(d))[:, 1]

    def marginals(self, dynamic):
        return {"on": (np.asarray(dynamic).argmax(-1), 2)}

    def stochastic_agents(self, s, params):
        return s == 0


def _pp_state(size=8, n_agents=64, steps=6):
    model = PredatorPrey(size=size, n_agents=n_agents)
    traj = ag.simulate(model, model.param_space.defaults(), jax.random.key(4), steps)
    return model, traj.final_state


def test_predator_prey_agent_view_matches_the_reference_graph():
    """Neighbour sums equal a brute-force sum over the reference featurizer's edges
    (active pairs at toroidal Manhattan distance <= 1, self excluded, plus holder ->
    reserved child); the view's dynamic features round-trip through ``with_dynamic``."""
    model, s = _pp_state()
    static, dynamic = model.agent_features(s)
    assert static.shape == (64, 2) and dynamic.shape == (64, 6)
    x = jax.random.normal(jax.random.key(0), (64, 3))
    got = np.asarray(model.neighbour_sum(s, x))
    phase = np.asarray(s.phase).argmax(0)
    active = np.isin(phase, [ALIVE, PREGNANT])
    px, py, parent = np.asarray(s.x), np.asarray(s.y), np.asarray(s.parent)
    dx = np.abs(px[:, None] - px[None])
    dy = np.abs(py[:, None] - py[None])
    dist = np.minimum(dx, 8 - dx) + np.minimum(dy, 8 - dy)
    adj = (dist <= 1) & active[:, None] & active[None] & ~np.eye(64, dtype=bool)
    for j in np.flatnonzero(parent >= 0):
        adj[j, parent[j]] = True  # child j receives its holder's features
    np.testing.assert_allclose(got, adj.astype(float) @ np.asarray(x), atol=1e-5)
    assert active.sum() > 5 and (parent >= 0).sum() > 5
    back = model.with_dynamic(s, dynamic)
    for field in ("phase", "parent"):
        np.testing.assert_array_equal(getattr(back, field), getattr(s, field))
    np.testing.assert_array_equal(np.asarray(back.x)[active], px[active])
    np.testing.assert_array_equal(np.asarray(back.y)[active], py[active])


def test_neighbour_sum_is_permutation_equivariant():
    """Relabelling the agents permutes the aggregated messages the same way (the GNN's
    aggregation is invariant to neighbour order)."""
    model, s = _pp_state()
    perm = np.asarray(jax.random.permutation(jax.random.key(1), 64))
    inverse = np.argsort(perm)
    parent = np.asarray(s.parent)
    relabelled = PredatorPreyState(
        kind=s.kind[perm],
        phase=s.phase[:, perm],
        x=s.x[perm],
        y=s.y[perm],
        parent=jnp.asarray(np.where(parent[perm] >= 0, inverse[np.maximum(parent[perm], 0)], -1)),
    )
    x = jax.random.normal(jax.random.key(2), (64, 4))
    np.testing.assert_allclose(
        model.neighbour_sum(relabelled, x[perm]), model.neighbour_sum(s, x)[perm], atol=1e-5
    )


def test_sir_network_agent_view():
    model = SIRNetwork(graph=ag.graphs.watts_strogatz(20, 4, 0.0, key=0))
    s = ag.simulate(model, model.param_space.defaults(), jax.random.key(0), 3).final_state
    static, dynamic = model.agent_features(s)
    assert static.shape == (20, 0) and dynamic.shape == (20, 3)
    ones = model.neighbour_sum(s, jnp.ones((20, 1)))
    np.testing.assert_allclose(ones[:, 0], 4.0)
    back = model.with_dynamic(s, dynamic)
    np.testing.assert_array_equal(back.infected, s.infected)


def test_ramification_shapes_and_main_branch():
    model = PredatorPrey(size=8, n_agents=64)
    data, final = ramifications(model, {}, jax.random.key(0), 5, 3)
    assert data.context.shape == (4, 64, 8) and data.aggregated.shape == (4, 64, 8)
    assert data.targets.shape == (4, 3, 64, 6) and data.degree.shape == (4, 64)
    # branch 0 is the main branch: the next context's dynamic features are its target
    np.testing.assert_array_equal(data.context[1:, :, 2:], data.targets[:-1, 0])
    np.testing.assert_array_equal(model.agent_features(final)[1], data.targets[-1, 0])
    assert data.observables["prey"].shape == (5,)  # t = 0 ... 4 along the main branch
    # siblings differ (independent keys), static features never change
    assert np.any(data.targets[:, 1] != data.targets[:, 0])
    assert np.all(data.context[:, :, :2] == data.context[:1, :, :2])


def test_schedule_matches_equation_3():
    sch = Schedule(100)
    k = np.arange(101)
    beta = 1e-4 + 0.5 * (0.02 - 1e-4) * (1 - np.cos(np.pi * k / 100))
    np.testing.assert_allclose(sch.betas, beta, rtol=1e-5)
    np.testing.assert_allclose(sch.alpha_bar, np.cumprod(1 - beta), rtol=1e-5)
    prev = np.concatenate([[1.0], np.cumprod(1 - beta)[:-1]])
    np.testing.assert_allclose(
        sch.posterior_variance, beta * (1 - prev) / (1 - np.cumprod(1 - beta)), rtol=2e-4
    )


def _gaussian_eps(sch, m, sd):
    """Exact noise prediction for data ``z ~ N(m, sd^2)``: ``E[eps | z_tau] =
    sqrt(1-a)(z_tau - sqrt(a) m) / (a sd^2 + 1 - a)`` with ``a = abar_tau``."""

    def eps_fn(x, tau):
        a = sch.alpha_bar[tau][:, None]
        return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * m) / (a * sd**2 + 1 - a)

    return eps_fn


def test_sampler_against_closed_forms():
    """Ancestral sampling with the exact Gaussian denoiser is an affine Gaussian
    recursion, so its output law is known in closed form.  (a) The paper's schedule
    (tau_max 100, beta_end 0.02) leaves abar_100 = 0.37, far from pure noise: the output
    mean and sd equal the recursion's (within 0.01 / 2%, 20,000 draws), not the data's.
    (b) With tau_max = 1000 (abar ~ 5e-5) the sampler returns the data law N(m, sd^2)."""
    m, sd = 0.7, 0.4
    sch = Schedule(100)
    abar = np.asarray(sch.alpha_bar, np.float64)
    assert 0.3 < abar[-1] < 0.45
    beta, alpha = np.asarray(sch.betas, np.float64), 1 - np.asarray(sch.betas, np.float64)
    post = np.asarray(sch.posterior_variance, np.float64)
    mean, var = 0.0, 1.0
    for tau in range(99, -1, -1):  # x <- c1 (x - c2 eps(x)) + sigma z, eps affine in x
        a = abar[tau]
        k = np.sqrt(1 - a) / (a * sd**2 + 1 - a)
        c = beta[tau] / np.sqrt(1 - a)
        slope, shift = (
            (1 - c * k) / np.sqrt(alpha[tau]),
            c * k * np.sqrt(a) * m / np.sqrt(alpha[tau]),
        )
        mean, var = slope * mean + shift, slope**2 * var + (post[tau] if tau > 0 else 0.0)
    x = np.asarray(
        jax.jit(lambda k: sch.sample(_gaussian_eps(sch, m, sd), (20000, 1), k))(jax.random.key(0))
    )
    assert abs(x.mean() - mean) < 0.01 and abs(x.std() / np.sqrt(var) - 1) < 0.02
    long = Schedule(1000)
    x = np.asarray(
        jax.jit(lambda k: long.sample(_gaussian_eps(long, m, sd), (20000, 1), k))(jax.random.key(1))
    )
    assert abs(x.mean() - m) < 0.01 and abs(x.std() / sd - 1) < 0.03


def test_score_gradient_through_the_sampler_is_unbiased_for_a_step_function():
    """A denoiser that predicts ``eps = c theta`` makes ``x_1`` (the sample before the
    last, noise-free step) Gaussian with mean ``A theta`` and sd ``s`` in closed form.
    For the step function ``f = 1(x_0 > 0) = 1(x_1 > b_0 c theta)`` the pathwise
    gradient is 0; the likelihood-ratio estimate of ``with_score`` must equal
    ``phi(z) A / s`` (z the standardised threshold), within 4 standard errors over
    20,000 draws.  The remainder, ``-phi(z) b_0 c / s`` from the last step's moving
    threshold, is the documented boundary term it leaves out (here 0.7% of the total)."""
    from agentgrad.surrogate import with_score

    sch, c, theta = Schedule(100), 0.6, 1.0
    beta = np.asarray(sch.betas, np.float64)
    abar, post = np.asarray(sch.alpha_bar, np.float64), np.asarray(sch.posterior_variance)
    b = beta / np.sqrt(1 - abar)
    mean, var = 0.0, 1.0  # per unit theta: x <- (x - b c theta) / sqrt(alpha) + sigma z
    for tau in range(99, 0, -1):
        mean = (mean - b[tau] * c) / np.sqrt(1 - beta[tau])
        var = var / (1 - beta[tau]) + post[tau]
    s = np.sqrt(var)
    z = (mean * theta - b[0] * c * theta) / s
    phi = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    expected, boundary = phi * mean / s, -phi * b[0] * c / s

    def draw(th, key):
        return sch.sample(lambda x, tau: c * th * jnp.ones_like(x), (1, 1), key, score=True)

    keys = jax.random.split(jax.random.key(0), 20000)
    x, _ = jax.vmap(draw, (None, 0))(theta, keys)
    f = (x[:, 0, 0] > 0).astype(jnp.float32)
    scores = jax.vmap(jax.grad(lambda th, k: draw(th, k)[1]), (None, 0))(theta, keys)
    centred = np.asarray(f) - (float(jnp.sum(f)) - np.asarray(f)) / (f.size - 1)
    per_draw = centred * np.asarray(scores)
    estimate = jax.grad(lambda th: jnp.mean(with_score(f, jax.vmap(draw, (None, 0))(th, keys)[1])))(
        theta
    )
    assert float(estimate) == pytest.approx(per_draw.mean(), rel=1e-4)  # with_score's identity
    se = per_draw.std() / np.sqrt(f.size)
    assert abs(per_draw.mean() - expected) < 4 * se, (per_draw.mean(), expected, se)
    assert abs(boundary) < 0.01 * abs(expected)
    assert abs(float(f.mean()) - (1 - 0.5 * (1 + math.erf(-z / np.sqrt(2))))) < 0.01


@pytest.fixture(scope="module")
def flip():
    """Flip (64 agents on a ring), 3 transitions x 32 branches; a tiny GDN (hidden
    (32, 64, 32), lr 1e-3, 30 epochs) and the GNN-only ablation (20 epochs)."""
    model = Flip()
    data, _ = ramifications(model, {}, jax.random.key(0), 4, 32)
    gdn = GDN(0, 2, jax.random.key(1), hidden=(32, 64, 32), gnn_hidden=(16,))
    gdn, history = train_gdn(gdn, data, jax.random.key(2), epochs=30, learning_rate=1e-3)
    gnn_only, _ = train_gdn(
        GNNOnly(0, 2, jax.random.key(1)), data, jax.random.key(2), 20, learning_rate=1e-3
    )
    return model, data, gdn, history, gnn_only


@pytest.mark.slow  # trains networks (~30-40 s); run by .ci/run
def test_tiny_gdn_learns_a_bernoulli_rule(flip):
    """Off -> On with probability 0.3, On stays On.  From a half-On state, 50 surrogate
    draws: P(Off -> On) within 0.06 of 0.3 (observed 0.33) and On stays On in >= 97%
    (observed 99.6%)."""
    model, data, gdn, history, _ = flip
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    s = (jnp.arange(64) % 2).astype(jnp.float32)
    z, agg, deg = agent_graph_inputs(model, s)
    draws = eqx.filter_jit(eqx.filter_vmap(lambda k: gdn.sample(z, agg, deg, k)))(
        jax.random.split(jax.random.key(3), 50)
    )
    on = np.asarray(jnp.argmax(draws, -1))
    assert abs(on[:, s == 0].mean() - 0.3) < 0.06
    assert on[:, s == 1].mean() >= 0.97


def test_emd_helpers_against_closed_forms():
    """Unit ground distance: EMD = total variation; 1-D: a shift moves mass by the shift."""
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 500), rng.integers(0, 4, 300)
    p, q = np.bincount(a, minlength=4) / 500, np.bincount(b, minlength=4) / 300
    assert categorical_emd(a, b, 4) == pytest.approx(0.5 * np.abs(p - q).sum(), abs=1e-9)
    x = rng.normal(size=400)
    assert ordinal_emd(x, x + 2.5) == pytest.approx(2.5)


@pytest.mark.slow  # trains networks (~30-40 s); run by .ci/run
def test_micro_emd_separates_the_surrogate_from_the_gnn_only_ablation(flip):
    """On a test ramification from a half-On state (2 conditions x 32 branches): the GDN's
    stochastic-rule EMD is below the deterministic GNN-only's (which always predicts the
    more likely outcome), and both recover the deterministic rule (EMD < 0.05)."""
    model, _, gdn, _, gnn_only = flip
    start = (jnp.arange(64) % 2).astype(jnp.float32)
    test, _ = ramifications(model, {}, jax.random.key(7), 3, 32, state=start)
    ours = micro_emd(model, gdn, test, jax.random.key(0))
    ablation = micro_emd(model, gnn_only, test, jax.random.key(0))
    assert ours["emd_stochastic"] < ablation["emd_stochastic"]
    assert ours["emd_deterministic"] < 0.05 and ablation["emd_deterministic"] < 0.05


@pytest.mark.slow  # trains networks (~30-40 s); run by .ci/run
def test_macro_smape_and_ar1(flip):
    """12-step rollouts from all-Off (40 runs): the GDN's mean On-count tracks the ABM's
    (sMAPE < 0.1); AR(1) fitted to a decaying series recovers phi = 0.9 within 0.01."""
    model, _, gdn, _, _ = flip
    error, abm, sur = macro_smape(
        model, GDNSurrogate(model, gdn), {}, jax.random.key(0), steps=12, runs=40
    )
    assert abm["on"].shape == (40, 12) and error < 0.1, error
    x = 100.0 * 0.9 ** np.arange(30) + np.random.default_rng(1).normal(0, 0.01, 30)
    forecast = ar1_forecast(x, 5, 2000, jax.random.key(0))
    assert abs(forecast.mean(0)[0] / x[-1] - 0.9) < 0.01  # phi, and a damped forecast
    assert np.all(np.diff(forecast.mean(0)) < 0)
    with pytest.raises(AgentgradError, match="at least 3"):
        ar1_forecast(np.array([1.0, 2.0]), 5, 10, jax.random.key(0))


@pytest.fixture(scope="module")
def small_surrogate():
    model = PredatorPrey(size=8, n_agents=64)
    data, _ = ramifications(model, {}, jax.random.key(0), 3, 2)
    gdn = GDN(2, 6, jax.random.key(1), hidden=(16, 32, 16), gnn_hidden=(8,), tau_max=10)
    gdn, _ = train_gdn(gdn, data, jax.random.key(2), epochs=2, learning_rate=1e-3)
    return model, data, gdn


def test_rollouts_jit_vmap_and_differentiate(small_surrogate):
    model, _, gdn = small_surrogate
    surrogate = GDNSurrogate(model, gdn)
    params = model.param_space.defaults()
    traj = ag.ensemble(surrogate, params, jax.random.key(0), 4, 3)
    assert traj.observables["prey"].shape == (3, 4)
    assert np.all(np.isfinite(np.asarray(traj.observables["prey"])))
    s0 = model.init(params, jax.random.key(5))

    def total_prey(phase):
        start = eqx.tree_at(lambda s: s.phase, s0, phase)
        sim = ag.simulate(GDNSurrogate(model, gdn, start), params, jax.random.key(1), 3)
        return jnp.sum(sim.observables["prey"])

    grad = jax.grad(total_prey)(s0.phase)
    assert np.all(np.isfinite(np.asarray(grad))) and np.any(np.asarray(grad) != 0)


@pytest.mark.slow  # three compilations of surrogate rollouts (~1 min); run by .ci/run
def test_score_rollouts_carry_the_path_density(small_surrogate):
    """``gradient="score"``: the same rollouts as pathwise (same keys), a running
    ``log_prob`` observable, and a finite, non-zero likelihood-ratio gradient of the
    mean final prey count with respect to the initial agent states."""
    from agentgrad.surrogate import with_score

    model, _, gdn = small_surrogate
    params = model.param_space.defaults()
    plain = ag.ensemble(GDNSurrogate(model, gdn), params, jax.random.key(0), 3, 4)
    scored = ag.ensemble(
        GDNSurrogate(model, gdn, gradient="score"), params, jax.random.key(0), 3, 4
    )
    # the same draws; pathwise adds straight-through terms that round at 1e-6
    np.testing.assert_allclose(plain.observables["prey"], scored.observables["prey"], atol=1e-5)
    log_prob = np.asarray(scored.observables["log_prob"])
    assert log_prob.shape == (4, 3) and np.all(np.isfinite(log_prob))
    assert np.all(np.diff(log_prob, axis=1) != 0)
    s0 = model.init(params, jax.random.key(5))

    def mean_final_prey(phase):
        start = eqx.tree_at(lambda s: s.phase, s0, phase)
        sim = GDNSurrogate(model, gdn, start, gradient="score")
        obs = ag.ensemble(sim, params, jax.random.key(1), 3, 8).observables
        return jnp.mean(with_score(obs["prey"][:, -1], obs["log_prob"][:, -1]))

    grad = np.asarray(jax.grad(mean_final_prey)(s0.phase))
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    with pytest.raises(AgentgradError, match="gradient must be one of"):
        GDNSurrogate(model, gdn, gradient="reinforce")
    with pytest.raises(AgentgradError, match="at least 2 rollouts"):
        with_score(jnp.ones(1), jnp.zeros(1))


def test_save_load_round_trip(small_surrogate, tmp_path):
    model, data, gdn = small_surrogate
    path = save_gdn(tmp_path / "gdn.eqx", gdn, {"model": "PredatorPrey"})
    again, meta = load_gdn(path)
    assert meta == {"model": "PredatorPrey"}
    z, agg, deg = (jnp.asarray(a[0]) for a in (data.context, data.aggregated, data.degree))
    k = jax.random.key(0)
    np.testing.assert_array_equal(gdn.sample(z, agg, deg, k), again.sample(z, agg, deg, k))
    file = data.save(tmp_path / "data.npz")
    loaded = Ramifications.load(file)
    np.testing.assert_array_equal(loaded.targets, data.targets)
    assert loaded.meta == data.meta


def test_bad_input(small_surrogate, tmp_path):
    model, data, gdn = small_surrogate
    with pytest.raises(AgentgradError, match="no agent view"):
        ramifications(Schelling(size=8, n_agents=20), {}, jax.random.key(0), 3, 2)
    with pytest.raises(AgentgradError, match="n_branches"):
        ramifications(model, {}, jax.random.key(0), 3, 0)
    with pytest.raises(AgentgradError, match="n_steps"):
        ramifications(model, {}, jax.random.key(0), 1, 2)
    with pytest.raises(AgentgradError, match="no trained surrogate"):
        load_gdn(tmp_path / "missing.eqx")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(AgentgradError, match="not an agentgrad ramification file"):
        Ramifications.load(tmp_path / "bad.npz")
    other = GDN(0, 3, jax.random.key(0), hidden=(8, 8))
    with pytest.raises(AgentgradError, match="different models"):
        train_gdn(other, data, jax.random.key(0), epochs=1)
    sir = SIRNetwork(graph=ag.graphs.watts_strogatz(20, 4, 0.0, key=0))
    with pytest.raises(AgentgradError, match="use the model it was trained on"):
        GDNSurrogate(sir, gdn).check_compatible({}, jax.random.key(0))
    with pytest.raises(AgentgradError, match="learning_rate"):
        train_gdn(gdn, data, jax.random.key(0), epochs=1, learning_rate=float("nan"))


def test_training_ema_and_cosine_schedule():
    """One optimiser step (1 transition x 1 branch x 1 epoch): the EMA's warm-up decay is
    min(d, 1/10) = 0.1, so the average is 0.1 init + 0.9 trained; a cosine schedule's
    first step equals the constant one's; bad options are one-line errors."""
    data, _ = ramifications(Flip(n_agents=8), {}, jax.random.key(0), 2, 1)
    init = GDN(0, 2, jax.random.key(1), hidden=(8, 8), gnn_hidden=(4,))
    plain, _ = train_gdn(init, data, jax.random.key(2), epochs=1, learning_rate=1e-2)
    averaged, _ = train_gdn(init, data, jax.random.key(2), 1, 1e-2, ema=0.999)
    cosine, _ = train_gdn(init, data, jax.random.key(2), 1, 1e-2, schedule="cosine")
    leaves = [
        jax.tree.leaves(eqx.filter(g, eqx.is_inexact_array))
        for g in (init, plain, averaged, cosine)
    ]
    moved = False
    for a, b, m, c in zip(*leaves, strict=True):
        np.testing.assert_allclose(m, 0.1 * a + 0.9 * b, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(c, b)
        moved |= bool(np.any(a != b))
    assert moved
    with pytest.raises(AgentgradError, match="schedule must be one of"):
        train_gdn(init, data, jax.random.key(2), 1, schedule="linear")
    with pytest.raises(AgentgradError, match="ema must be a decay"):
        train_gdn(init, data, jax.random.key(2), 1, ema=1.0)


@pytest.mark.slow  # trains networks (~30-40 s); run by .ci/run
def test_command_line_pipeline(tmp_path):
    """data -> train (GDN and GNN-only) -> evaluate -> run surrogate:PATH on a tiny
    predator-prey, and one-line errors (exit 2, nothing written) for bad input."""
    import pandas as pd
    from typer.testing import CliRunner

    from agentgrad.cli import app

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    d, s1, s2, e = (tmp_path / n for n in ("d", "s1", "s2", "e"))
    steps = ["--grid-size", 8, "--agents", 64, "--steps", 4, "--branches", 4]
    r = invoke("surrogate", "data", "predator-prey", *steps, "--test-steps", 3, "--out", d)
    assert r.exit_code == 0, r.output
    small = ["--epochs", 2, "--learning-rate", 1e-3]
    tuned = ["--time-embedding", 16, "--schedule", "cosine", "--ema", 0.99]
    r = invoke("surrogate", "train", d, *small, *tuned, "--hidden", "16,16", "--gnn-hidden", 8,
               "--out", s1)  # fmt: skip
    assert r.exit_code == 0, r.output
    r = invoke("surrogate", "train", d, *small, "--variant", "gnn-only", "--out", s2)
    assert r.exit_code == 0, r.output
    r = invoke(
        "surrogate", "evaluate", s1 / "surrogate.eqx", s2 / "surrogate.eqx", "--data", d,
        "--runs", 4, "--steps", 5, "--out", e,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    metrics = pd.read_csv(e / "metrics.csv")
    assert list(metrics.variant) == ["gdn", "gnn-only", "ar1"]
    assert np.all(np.isfinite(metrics.smape)) and (e / "forecast.png").stat().st_size > 0
    r = invoke("run", f"surrogate:{s1 / 'surrogate.eqx'}", "--runs", 2, "--steps", 3,
               "--out", tmp_path / "run")  # fmt: skip
    assert r.exit_code == 0, r.output

    def one_line(result, message):
        assert result.exit_code == 2, result.output
        assert result.output.strip().startswith("error:") and message in result.output

    one_line(invoke("run", "surrogate:missing.eqx", "--out", tmp_path / "x"), "no trained")
    one_line(invoke("surrogate", "data", "schelling", "--out", tmp_path / "y"), "no agent view")
    assert not (tmp_path / "y").exists()
    one_line(invoke("surrogate", "data", "predator-prey", "--branches", 0), "--branches")
    one_line(invoke("surrogate", "train", d, "--variant", "foo"), "unknown --variant")
    one_line(invoke("surrogate", "train", d, "--schedule", "linear"), "--schedule must be")
    one_line(invoke("surrogate", "train", d, "--ema", 1.5), "--ema must be a decay")
    one_line(invoke("surrogate", "train", d, "--time-embedding", 1), "--time-embedding")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "provenance.json").write_text(
        (d / "provenance.json").read_text(), encoding="utf-8"
    )
    (tmp_path / "bad" / "train.npz").write_bytes(b"corrupt")
    one_line(invoke("surrogate", "train", tmp_path / "bad"), "not an agentgrad ramification")
    other = tmp_path / "other"
    r = invoke("surrogate", "data", "predator-prey", "--grid-size", 8, "--agents", 70,
               "--steps", 3, "--branches", 2, "--test-steps", 2, "--out", other)  # fmt: skip
    assert r.exit_code == 0, r.output
    one_line(
        invoke("surrogate", "evaluate", s1 / "surrogate.eqx", "--data", other, "--out", e),
        "trained on another model",
    )


# ---------------------------------------------------------------- beyond the paper: Theta


def _flip_across(values, n_steps=4, n_branches=32):
    from agentgrad.surrogate import concatenate_ramifications

    parts = [
        ramifications(Flip(), {"p": p}, jax.random.key(i), n_steps, n_branches, None, ["p"])[0]
        for i, p in enumerate(values)
    ]
    return concatenate_ramifications(parts)


def test_parameter_conditioned_data_network_and_rollouts(tmp_path):
    """Data store Theta per transition and survive concatenation and save / load; the
    network scales Theta to [-1, 1] over its range, needs it, and keeps it through
    save / load; a conditioned surrogate's rollout is differentiable in Theta."""
    data = _flip_across([0.2, 0.6], n_steps=3, n_branches=2)
    assert data.targets.shape == (4, 2, 64, 2) and data.theta_names == ("p",)
    np.testing.assert_allclose(data.theta[:, 0], [0.2, 0.2, 0.6, 0.6])
    again = Ramifications.load(data.save(tmp_path / "theta.npz"))
    np.testing.assert_array_equal(again.theta, data.theta)
    assert again.theta_names == ("p",)

    gdn = GDN(0, 2, jax.random.key(1), hidden=(8, 8), gnn_hidden=(8,), tau_max=10,
              theta_names=["p"], theta_ranges=[(0.2, 0.6)])  # fmt: skip
    np.testing.assert_allclose(gdn.scaled_theta(jnp.array([0.4])), [0.0], atol=1e-6)
    np.testing.assert_allclose(gdn.scaled_theta(jnp.array([0.6])), [1.0])
    z, agg, deg = (jnp.asarray(a[0]) for a in (data.context, data.aggregated, data.degree))
    with pytest.raises(AgentgradError, match="conditioned on \\['p'\\]"):
        gdn.sample(z, agg, deg, jax.random.key(0))
    gdn, history = train_gdn(gdn, data, jax.random.key(2), epochs=1, learning_rate=1e-3)
    loaded, _ = load_gdn(save_gdn(tmp_path / "theta.eqx", gdn))
    assert loaded.theta_names == ("p",)
    k, th = jax.random.key(0), jnp.array([0.3])
    np.testing.assert_array_equal(gdn.sample(z, agg, deg, k, th), loaded.sample(z, agg, deg, k, th))

    surrogate = GDNSurrogate(Flip(), gdn)

    def total_on(p):
        return jnp.sum(ag.simulate(surrogate, {"p": p}, jax.random.key(3), 3).observables["on"])

    grad = jax.grad(total_on)(jnp.float32(0.4))
    assert np.isfinite(float(grad)) and float(grad) != 0.0


def test_parameter_conditioning_bad_input():
    data = _flip_across([0.2], n_steps=2, n_branches=1)
    with pytest.raises(AgentgradError, match="has no parameters \\['q'\\]"):
        ramifications(Flip(), {}, jax.random.key(0), 3, 2, condition_on=["q"])
    plain = GDN(0, 2, jax.random.key(1), hidden=(8, 8), gnn_hidden=(8,), tau_max=10)
    with pytest.raises(AgentgradError, match="condition_on= the network's theta_names"):
        train_gdn(plain, data, jax.random.key(0), epochs=1)
    conditioned = GDN(0, 2, jax.random.key(1), hidden=(8, 8), tau_max=10, theta_names=["q"])
    with pytest.raises(AgentgradError, match="does not have"):
        GDNSurrogate(Flip(), conditioned).check_compatible({}, jax.random.key(0))
    with pytest.raises(ValueError, match="theta_input"):
        GDN(0, 2, jax.random.key(1), theta_names=["p"], theta_input="gnn")
    with pytest.raises(ValueError, match="low < high"):
        GDN(0, 2, jax.random.key(1), theta_names=["p"], theta_ranges=[(1.0, 0.0)])
    other = ramifications(PredatorPrey(size=8, n_agents=64), {}, jax.random.key(0), 2, 1)[0]
    from agentgrad.surrogate import concatenate_ramifications

    with pytest.raises(AgentgradError, match="cannot concatenate"):
        concatenate_ramifications([data, other])


@pytest.mark.slow  # trains a network (~15 s); run by .ci/run
def test_parameter_conditioned_gdn_interpolates_a_rule():
    """Trained on Off -> On probabilities p in {0.1, 0.5, 0.9} (3 transitions x 32
    branches each), the conditioned GDN's P(Off -> On) from a half-On state, 50 draws,
    is within 0.08 of p at the held-out 0.3 and 0.7 (observed 0.35, 0.70), increases
    with p, and On stays On in >= 97% of draws."""
    data = _flip_across([0.1, 0.5, 0.9])
    gdn = GDN(0, 2, jax.random.key(1), hidden=(16, 32, 16), gnn_hidden=(16,), condition=32,
              theta_names=["p"])  # fmt: skip
    gdn, _ = train_gdn(gdn, data, jax.random.key(2), 40, learning_rate=5e-4)
    s = (jnp.arange(64) % 2).astype(jnp.float32)
    z, agg, deg = agent_graph_inputs(Flip(), s)
    sample = eqx.filter_jit(
        eqx.filter_vmap(lambda k, th: gdn.sample(z, agg, deg, k, th), in_axes=(0, None))
    )
    rates = []
    for p in (0.1, 0.3, 0.5, 0.7, 0.9):
        on = np.asarray(
            jnp.argmax(sample(jax.random.split(jax.random.key(3), 50), jnp.array([p])), -1)
        )
        rates.append(on[:, s == 0].mean())
        assert on[:, s == 1].mean() >= 0.97
    assert abs(rates[1] - 0.3) < 0.08 and abs(rates[3] - 0.7) < 0.08, rates
    assert np.all(np.diff(rates) > 0), rates


@pytest.mark.slow  # trains a network and simulates at several parameters; run by .ci/run
def test_command_line_parameter_conditioned_pipeline(tmp_path):
    """surrogate data --condition-on draws the training data at --theta-values values of
    a parameter; train then fits a conditioned GDN (its ranges from the data); run uses
    it at any value of the parameter; bad specifications: one-line errors, exit 2."""
    from typer.testing import CliRunner

    from agentgrad.cli import app

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    d, s = tmp_path / "d", tmp_path / "s"
    base = ["predator-prey", "--grid-size", 8, "--agents", 64, "--steps", 3, "--branches", 2]
    theta = ["--condition-on", "prey_without_pregnant=0.3:0.6", "--theta-values", 3]
    r = invoke("surrogate", "data", *base, *theta, "--test-steps", 2, "--out", d)
    assert r.exit_code == 0, r.output
    train = Ramifications.load(d / "train.npz")
    assert train.targets.shape[:2] == (6, 2) and train.theta_names == ("prey_without_pregnant",)
    np.testing.assert_allclose(np.unique(train.theta), [0.3, 0.45, 0.6], rtol=1e-6)
    assert set(train.observables) == {"predators", "prey"}  # the main branch, for AR(1)
    r = invoke("surrogate", "train", d, "--epochs", 1, "--learning-rate", 1e-3,
               "--hidden", "8,8", "--gnn-hidden", 8, "--condition", 8, "--out", s)  # fmt: skip
    assert r.exit_code == 0, r.output
    net, _ = load_gdn(s / "surrogate.eqx")
    assert net.theta_names == ("prey_without_pregnant",)
    assert dict(net.config)["theta_ranges"] == ((0.3, 0.6),)
    r = invoke("run", f"surrogate:{s / 'surrogate.eqx'}", "--runs", 2, "--steps", 2,
               "--param", "prey_without_pregnant=0.5", "--out", tmp_path / "run")  # fmt: skip
    assert r.exit_code == 0, r.output
    for spec, message in (
        ("nope=0:1", "unknown parameter 'nope'"),
        ("prey_without_pregnant=0.6:0.3", "LOW < HIGH"),
        ("prey_without_pregnant", "LOW < HIGH"),
    ):
        r = invoke("surrogate", "data", *base, "--condition-on", spec, "--out", tmp_path / "x")
        assert r.exit_code == 2 and message in r.output, r.output
        assert not (tmp_path / "x").exists()
    r = invoke("surrogate", "train", d, "--variant", "gnn-only", "--out", tmp_path / "g")
    assert r.exit_code == 2 and "not parameter-conditioned" in r.output, r.output
