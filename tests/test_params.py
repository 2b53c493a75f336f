import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agentgrad import Beta, LogNormal, Normal, Param, ParameterError, ParamSpace, Uniform

SPACE = ParamSpace(
    {
        "free": Param(0.5, prior=Normal(0.0, 1.0)),
        "positive": Param(2.0, 0.0, math.inf, LogNormal(0.0, 1.0)),
        "upper": Param(-1.0, -math.inf, 0.0),
        "prob": Param(0.3, 0.0, 1.0, Beta(2.0, 3.0)),
        "window": Param(5.0, 0.0, 10.0),
    }
)


def test_defaults_are_float32_in_order():
    d = SPACE.defaults()
    assert list(d) == ["free", "positive", "upper", "prob", "window"]
    assert all(v.dtype == jnp.float32 and v.shape == () for v in d.values())
    assert float(d["prob"]) == pytest.approx(0.3)


def test_bijection_round_trip_and_jacobian():
    x = {"free": 0.7, "positive": 3.0, "upper": -0.2, "prob": 0.9, "window": 2.5}
    u = SPACE.to_unconstrained({k: jnp.float32(v) for k, v in x.items()})
    back = SPACE.to_constrained(u)
    for name, value in x.items():
        assert float(back[name]) == pytest.approx(value, rel=1e-5)
        param = SPACE[name]
        fd = jax.grad(param.to_constrained)(u[name])
        assert float(param.log_abs_det_jacobian(u[name])) == pytest.approx(
            math.log(abs(float(fd))), abs=1e-5
        )


def test_constrained_values_respect_bounds():
    u = jnp.linspace(-20.0, 20.0, 41)
    for name in SPACE.names:
        p = SPACE[name]
        x = np.asarray(p.to_constrained(u))
        assert np.all(x >= p.lower) and np.all(x <= p.upper)


def test_complete_fills_defaults_and_checks():
    full = SPACE.complete({"prob": 0.5})
    assert float(full["prob"]) == 0.5 and float(full["window"]) == 5.0
    with pytest.raises(ParameterError, match="unknown parameter 'nope'.*valid names"):
        SPACE.complete({"nope": 1.0})
    with pytest.raises(ParameterError, match="'prob'=1.5 is outside its bounds"):
        SPACE.complete({"prob": 1.5})
    with pytest.raises(ParameterError, match="NaN"):
        SPACE.complete({"free": float("nan")})


def test_priors_log_prob_and_sampling(key):
    space = ParamSpace({n: SPACE[n] for n in SPACE.names if n != "upper"})
    draws = space.sample_prior(key, (20_000,))
    assert float(draws["prob"].mean()) == pytest.approx(2 / 5, abs=0.01)  # Beta(2,3) mean
    assert float(draws["window"].mean()) == pytest.approx(5.0, abs=0.1)
    lp = space.log_prior({k: v[0] for k, v in draws.items()})
    assert np.isfinite(float(lp))
    assert float(Uniform(0.0, 4.0).log_prob(jnp.float32(5.0))) == -math.inf
    assert float(LogNormal(0.0, 1.0).log_prob(jnp.float32(-1.0))) == -math.inf


def test_invalid_declarations():
    with pytest.raises(ParameterError, match="outside the bounds"):
        Param(2.0, 0.0, 1.0)
    with pytest.raises(ParameterError, match="prior support"):
        Param(0.5, 0.0, 1.0, Normal(0.0, 1.0))
    with pytest.raises(ParameterError, match="no prior"):
        ParamSpace({"x": Param(0.0)}).log_prior({"x": 0.0})
    space = ParamSpace({"x": Param(0.0)}).with_priors({"x": Normal(0.0, 2.0)})
    assert float(space.log_prior({"x": jnp.float32(0.0)})) == pytest.approx(
        -0.5 * math.log(2 * math.pi * 4.0), rel=1e-5
    )
