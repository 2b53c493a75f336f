"""Generalised variational inference with pathwise gradients (§6.1, eq. 58; §10.2).

Objective (our convention, the issue's eq. 58 form):

    L(phi) = E_{q_phi}[ loss(theta, y) ] + w * KL(q_phi || prior),

with ``theta ~ q_phi`` reparameterised (``theta = T(u)``, ``u`` from the family), the
expectation and the KL by Monte Carlo over ``n_samples`` draws per step
(``KL = E_q[log q(theta) - log prior(theta)]``), and ``loss`` averaged over
``n_sims`` simulator runs per draw.  Gradients are pathwise: ``jax.grad`` through the
family, the bijection and the differentiable simulator (reverse mode).  Optimiser:
AdamW with gradient-norm clipping (§10.2.2).  Each epoch evaluates the objective on a
fixed validation key; the weights with the lowest validation objective are kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.flatten_util  # noqa: F401
import jax.numpy as jnp
import numpy as np
import optax

from agentgrad.calibration.families import (
    DiagonalGaussian,
    Family,
    MaskedAutoregressiveFlow,
    initial_mean,
    support_param,
    to_params,
)
from agentgrad.calibration.losses import Loss, get_loss
from agentgrad.engine import Model, simulate, warn_if_unvalidated
from agentgrad.errors import AgentgradError
from agentgrad.gradients import select_parameters
from agentgrad.params import ParamSpace, Prior
from agentgrad.stochad import StochasticDerivative, derivative_estimate


def gvi_objective(space, names, data_term, kl_weight, n_samples, family, key):
    """Monte-Carlo GVI objective ``mean_i data_term(theta_i) + w * mean_i log(q/prior)``."""
    k_q, k_sim = jax.random.split(key)
    u, log_q = family.sample_and_log_prob(k_q, n_samples)
    theta, log_det = to_params(space, names, u)
    log_prior = sum(space[n].prior.log_prob(theta[n]) for n in names)
    kl = jnp.mean(log_q - log_det - log_prior)
    keys = jax.random.split(k_sim, n_samples)
    data = jax.vmap(data_term)(theta, keys)
    return jnp.mean(data) + kl_weight * kl


def _hybrid(data_term, names, unbiased: bool = False):
    """``data_term`` whose reverse-mode derivative in theta is computed by forward mode.

    §6.2: the simulator's Jacobian w.r.t. the D parameters comes from D forward-mode
    tangents (memory independent of the number of steps); the flow is differentiated in
    reverse mode around it (``custom_vjp``).  With ``unbiased=True`` the Jacobian comes
    from :func:`agentgrad.stochad.derivative_estimate` (models drawing with
    ``StochasticDerivative``).
    """

    def plain(theta_vec, key):
        return data_term(dict(zip(names, theta_vec, strict=True)), key)

    f = jax.custom_vjp(plain)

    def fwd(theta_vec, key):
        g = lambda v: plain(v, key)  # noqa: E731
        basis = jnp.eye(theta_vec.shape[0], dtype=theta_vec.dtype)
        if unbiased:  # StochasticDerivative models: one two-pass estimate per direction
            tangents = jax.vmap(lambda e: derivative_estimate(plain, theta_vec, key, e))(basis)
            return g(theta_vec), tangents
        values, tangents = jax.vmap(lambda e: jax.jvp(g, (theta_vec,), (e,)))(basis)
        return values[0], tangents

    def bwd(jac, ct):
        return ct * jac, None

    f.defvjp(fwd, bwd)
    return lambda theta, key: f(jnp.stack([theta[n] for n in names]), key)


def make_value_and_grad(
    space, names, data_term, kl_weight, n_samples, *, gradient, ad, unbiased=False
):
    """``(trainable, static, key) -> (objective, gradient w.r.t. trainable)``.

    * ``pathwise`` (§6.1 eqs. 60-63): reparameterised samples through the family and the
      simulator; ``ad="reverse"`` (``jax.grad``), ``"forward"`` (``jax.jacfwd`` over all
      family parameters — only sensible for small families) or ``"hybrid"`` (forward-mode
      simulator Jacobian + reverse through the family).
    * ``score`` (REINFORCE): ``mean_i (f_i - b_i) grad log q(theta_i)`` with
      ``f_i = data_i + w (log q_i - log prior_i)``, ``theta_i`` held fixed and the
      leave-one-out mean ``b_i`` as baseline (unbiased).
    * ``vargrad`` (Richter et al. 2020): the gradient of ``w/2 * Var_i[f_i / w]`` with
      ``theta_i`` and the data terms held fixed, i.e. ``1/(n-1) sum_i (f_i - mean f)
      grad log q(theta_i)``.
    """
    if gradient not in ("pathwise", "score", "vargrad"):
        raise AgentgradError(f"gradient must be pathwise, score or vargrad, got {gradient!r}")
    if ad not in ("reverse", "forward", "hybrid"):
        raise AgentgradError(f"ad must be reverse, forward or hybrid, got {ad!r}")
    if gradient != "pathwise" and n_samples < 2:
        raise AgentgradError("score-based gradients need n_samples >= 2")

    if gradient == "pathwise":
        if unbiased and ad != "hybrid":
            raise AgentgradError(
                "models drawing with StochasticDerivative calibrate with ad='hybrid' "
                "(or a score-based gradient)"
            )
        term = _hybrid(data_term, names, unbiased) if ad == "hybrid" else data_term

        def objective(trainable, static, key):
            fam = eqx.combine(trainable, static)
            return gvi_objective(space, names, term, kl_weight, n_samples, fam, key)

        if ad == "forward":

            def value_and_grad(trainable, static, key):
                flat, unravel = jax.flatten_util.ravel_pytree(trainable)
                g = jax.jacfwd(lambda v: objective(unravel(v), static, key))(flat)
                return objective(trainable, static, key), unravel(g)

            return value_and_grad
        return jax.value_and_grad(objective)

    def surrogate(trainable, static, key):
        fam = eqx.combine(trainable, static)
        k_q, k_sim = jax.random.split(key)
        u, _ = fam.sample_and_log_prob(k_q, n_samples)
        u = jax.lax.stop_gradient(u)
        log_q_u = fam.log_prob(u)  # differentiable in the family parameters
        theta, log_det = to_params(space, names, u)
        log_prior = sum(space[n].prior.log_prob(theta[n]) for n in names)
        data = jax.vmap(data_term)(theta, jax.random.split(k_sim, n_samples))
        f = jax.lax.stop_gradient(data + kl_weight * (log_q_u - log_det - log_prior))
        value = jnp.mean(f)
        n = n_samples
        if gradient == "score":
            baseline = (jnp.sum(f) - f) / (n - 1)
            return jnp.mean((f - baseline) * log_q_u), value
        centred = f - jnp.mean(f)
        return jnp.sum(centred * log_q_u) / (n - 1), value

    def value_and_grad(trainable, static, key):
        (_, value), grads = jax.value_and_grad(surrogate, has_aux=True)(trainable, static, key)
        return value, grads

    return value_and_grad


@contextmanager
def _progress(show: bool, total: int):
    """A ``(epoch, value) -> None`` callback drawing a rich progress bar when ``show``."""
    if not show:
        yield lambda epoch, value: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("calibrating"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=total)
        yield lambda epoch, value: bar.update(
            task,
            completed=epoch + 1,
            description=f"epoch {epoch + 1}/{total} objective {value:.4g}",
        )


@dataclass
class Posterior:
    """A fitted variational posterior over the named parameters."""

    family: Family
    model: Model
    names: list[str]
    history: dict[str, list[float]] = field(default_factory=dict)
    space: ParamSpace | None = None  # the calibrated space (model's, with prior overrides)

    @property
    def param_space(self) -> ParamSpace:
        return self.space if self.space is not None else self.model.param_space

    def sample(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
        u, _ = self.family.sample_and_log_prob(key, n)
        theta, _ = to_params(self.param_space, self.names, u)
        return theta

    def to_inference_data(self, key: jax.Array, n: int = 1000):
        """Posterior samples as ArviZ ``InferenceData`` (one chain, ``n`` draws)."""
        import arviz as az

        samples = self.sample(key, n)
        return az.from_dict(posterior={k: np.asarray(v)[None] for k, v in samples.items()})

    def save(self, path: str | os.PathLike) -> None:
        """Write the family's weights (``path``) and its description (``path.json``)."""
        self.save_weights(path)
        self.save_description(f"{path}.json")

    def save_weights(self, path: str | os.PathLike) -> None:
        """Write the family's weights (equinox leaf serialisation)."""
        eqx.tree_serialise_leaves(path, self.family)

    def save_description(self, path: str | os.PathLike) -> None:
        """Write the JSON description :meth:`load` needs beside the weights."""
        fam = self.family
        meta = {"names": self.names, "dim": len(self.names), "history": self.history}
        if isinstance(fam, DiagonalGaussian):
            meta["family"] = "gaussian"
        else:
            meta.update(family="flow", n_layers=len(fam.layers), hidden=list(fam.hidden))
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(meta, fh)

    @classmethod
    def load(cls, path: str | os.PathLike, model: Model) -> Posterior:
        """Read a posterior written by :meth:`save` for ``model``."""
        try:
            with open(f"{path}.json", encoding="utf-8") as fh:
                meta = json.load(fh)
        except (OSError, ValueError) as err:
            raise AgentgradError(f"cannot read posterior description {path}.json: {err}") from None
        if meta["family"] == "gaussian":
            template = DiagonalGaussian(meta["dim"])
        else:
            template = MaskedAutoregressiveFlow(
                meta["dim"], jax.random.key(0), meta["n_layers"], tuple(meta["hidden"])
            )
        family = eqx.tree_deserialise_leaves(path, template)
        return cls(family, model, list(meta["names"]), meta.get("history", {}))

    def log_prob(self, theta: Mapping[str, jax.Array]) -> jax.Array:
        """Log-density in the constrained space (includes the bijection's Jacobian)."""
        space = self.param_space
        u = jnp.stack(
            [
                support_param(space, n).to_unconstrained(jnp.asarray(theta[n], jnp.float32))
                for n in self.names
            ],
            axis=-1,
        )
        _, log_det = to_params(space, self.names, u)
        return self.family.log_prob(u) - log_det


def _fingerprint(model, observed, names, *settings) -> str:
    """Hash of everything a resumed calibration must share with the checkpointed one."""
    import hashlib

    def token(value) -> str:
        if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            return repr(np.asarray(jax.random.key_data(value)).tolist())
        if isinstance(value, Mapping):
            return repr(sorted(map(repr, value.items())))
        if isinstance(value, int | float | str | list | None):
            return repr(value)
        return type(value).__name__

    h = hashlib.sha256()
    h.update(repr((type(model).__name__, list(names))).encode())
    for name in sorted(observed):
        h.update(name.encode())
        h.update(np.asarray(observed[name], np.float32).tobytes())
    for value in settings:
        h.update(token(value).encode())
    return h.hexdigest()


def _save_checkpoint(path, tree, fingerprint: str, meta: dict) -> None:
    from agentgrad.outputs import write_atomic

    path = os.fspath(path)
    text = json.dumps({**meta, "fingerprint": fingerprint}, allow_nan=True)
    write_atomic(path, lambda p: eqx.tree_serialise_leaves(p, tree))
    write_atomic(f"{path}.json", lambda p: p.write_text(text, encoding="utf-8"))


def _load_checkpoint(path, template, fingerprint: str):
    path = os.fspath(path)
    try:
        with open(f"{path}.json", encoding="utf-8") as fh:
            meta = json.load(fh)
        tree = eqx.tree_deserialise_leaves(path, template)
    except (OSError, ValueError, RuntimeError) as err:
        raise AgentgradError(f"cannot read checkpoint {path}: {err}") from None
    if meta.get("fingerprint") != fingerprint:
        raise AgentgradError(
            f"checkpoint {path} was written with other settings (model, data, parameters, "
            "loss, family, sizes, learning rate or seed); rerun without --resume"
        )
    return tree, meta


def calibrate(
    model: Model,
    observed: Mapping[str, Any],
    key: jax.Array,
    *,
    parameters: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    loss: str | Loss = "mse",
    family: str | Family = "gaussian",
    kl_weight: float = 1.0,
    n_samples: int = 5,
    n_sims: int = 2,
    epochs: int = 200,
    learning_rate: float = 1e-2,
    clip_norm: float = 1.0,
    patience: int | None = None,
    gradient: str = "pathwise",
    ad: str = "reverse",
    progress: bool = False,
    priors: Mapping[str, Prior] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 25,
    resume: bool = False,
) -> Posterior:
    """Fit a variational posterior to ``observed`` (name -> series of length T).

    ``parameters`` are calibrated (default: all); the others stay at ``fixed`` or their
    defaults.  ``family`` is ``"gaussian"``, ``"flow"`` or a :class:`Family`.
    ``gradient`` is ``pathwise``, ``score`` or ``vargrad``; ``ad`` (pathwise only) is
    ``reverse``, ``forward`` or ``hybrid`` (see :func:`make_value_and_grad`).
    ``priors`` overrides the model's priors by name (not stored by :meth:`Posterior.save`).
    ``progress`` shows a progress bar with the current objective.  Epochs whose objective
    is NaN or infinite are counted in ``history["non_finite_epochs"]``.  Models drawing
    with ``StochasticDerivative`` need ``ad="hybrid"`` (or a score-based gradient).

    ``checkpoint`` (a path) saves the optimiser state every ``checkpoint_every`` epochs,
    at the end and on Ctrl-C (``path`` + ``path.json``, written atomically); with
    ``resume=True`` training continues from it.  Epoch keys are ``fold_in(key, epoch)``,
    so a resumed calibration equals an uninterrupted one.  Resuming with other settings
    (model, data, parameters, loss, family, gradient, sizes, learning rate, key) raises.
    """
    space = model.param_space.with_priors(priors) if priors else model.param_space
    names = select_parameters(space, parameters)
    base = space.complete(fixed)
    observed = {k: jnp.asarray(v, jnp.float32) for k, v in observed.items()}
    if not observed:
        raise AgentgradError("observed data must contain at least one observable")
    lengths = {v.shape for v in observed.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise AgentgradError("every observed series must be 1-D with the same length")
    n_steps = next(iter(lengths))[0]
    warn_if_unvalidated(model, n_steps)
    loss_fn = get_loss(loss)
    k_init, k_val, k_train = jax.random.split(key, 3)
    if isinstance(family, str):
        if family == "gaussian":
            family = DiagonalGaussian(len(names), initial_mean(space, names))
        elif family == "flow":
            family = MaskedAutoregressiveFlow(len(names), k_init, shift=initial_mean(space, names))
        else:
            raise AgentgradError(f"unknown family {family!r}; use gaussian or flow")

    unbiased = isinstance(getattr(model, "estimator", None), StochasticDerivative)

    def data_term(theta, k):
        params = {**base, **theta}
        keys = jax.random.split(k, n_sims)
        if unbiased:  # each simulate call is its own stochastic-derivative site
            runs = [simulate(model, params, kk, n_steps).observables for kk in keys]
            sims = {n: jnp.stack([r[n] for r in runs]) for n in observed}
        else:
            sims = jax.vmap(lambda kk: simulate(model, params, kk, n_steps).observables)(keys)
        return loss_fn({n: sims[n] for n in observed}, observed)

    value_and_grad = make_value_and_grad(
        space,
        names,
        data_term,
        kl_weight,
        n_samples,
        gradient=gradient,
        ad=ad,
        unbiased=unbiased,
    )
    params, static = eqx.partition(family, eqx.is_inexact_array)
    optimizer = optax.chain(
        optax.clip_by_global_norm(clip_norm), optax.adamw(learning_rate, b1=0.9, b2=0.999)
    )
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, k):
        value, grads = value_and_grad(params, static, k)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int counts and floats
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, value

    def objective(fam, k):
        return gvi_objective(space, names, data_term, kl_weight, n_samples, fam, k)

    validate = jax.jit(lambda p: objective(eqx.combine(p, static), k_val))
    history = {"train": [], "validation": []}
    best, best_value, since_best, n_bad = params, np.inf, 0, 0
    start = 0
    fingerprint = _fingerprint(
        model,
        observed,
        names,
        loss,
        family,
        kl_weight,
        n_samples,
        n_sims,
        learning_rate,
        clip_norm,
        gradient,
        ad,
        key,
        priors,
    )
    if resume:
        if checkpoint is None:
            raise AgentgradError("resume=True needs checkpoint= (the checkpoint path)")
        (params, opt_state, best), meta = _load_checkpoint(
            checkpoint, (params, opt_state, best), fingerprint
        )
        best_value, since_best, n_bad = meta["best_value"], meta["since_best"], meta["n_bad"]
        history = meta["history"]
        start = len(history["train"])  # epochs completed

    def save():
        if checkpoint is not None:
            meta = {"best_value": best_value, "since_best": since_best, "n_bad": n_bad}
            _save_checkpoint(
                checkpoint, (params, opt_state, best), fingerprint, {**meta, "history": history}
            )

    try:
        with _progress(progress, epochs) as bar:
            for epoch in range(start, epochs):
                key = jax.random.fold_in(k_train, epoch)
                new_params, new_opt_state, value = step(params, opt_state, key)
                val = float(validate(new_params))
                # assigned only now, so Ctrl-C never checkpoints a half-finished epoch
                params, opt_state = new_params, new_opt_state
                history["train"].append(float(value))
                history["validation"].append(val)
                if not np.isfinite(value) or not np.isfinite(val):
                    n_bad += 1
                if np.isfinite(val) and val < best_value:
                    best, best_value, since_best = params, val, 0
                else:
                    since_best += 1
                bar(epoch, val)
                if (epoch + 1) % checkpoint_every == 0:
                    save()
                if patience is not None and since_best >= patience:
                    break
    except KeyboardInterrupt:
        save()
        raise
    save()
    history["non_finite_epochs"] = [n_bad]
    return Posterior(eqx.combine(best, static), model, list(names), history, space)
