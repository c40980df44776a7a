import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.ad_checkpoint import checkpoint_name

from visjax.base import interpret


def program(p, x):
    h = jax.nn.relu(x @ p)
    h = checkpoint_name(h, "a")
    h = jax.jit(lambda h: checkpoint_name(h * 2.0, "b"))(h)
    h = jax.checkpoint(lambda h: checkpoint_name(jnp.tanh(h), "c"))(h)
    return h.sum()


P = jnp.array([[1.0, -1.0, 0.0], [0.5, 2.0, -3.0], [0.0, 1.0, 1.0]])
X = jnp.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])


def test_names_found_inside_nested_calls():
    closed = jax.make_jaxpr(program)(P, X)
    assert interpret.names_in(closed) == ["a", "b", "c"]


def test_plain_evaluation_reproduces_the_function():
    closed = jax.make_jaxpr(program)(P, X)
    (out,) = interpret.eval_jaxpr(closed, [P, X])
    np.testing.assert_allclose(out, program(P, X), rtol=1e-6)


def test_capture_and_replace_inside_jit_and_remat():
    closed = jax.make_jaxpr(program)(P, X)
    seen = {}

    def on_name(key, value):
        seen[key] = value
        return value + 1.0 if key == "b" else value

    (out,) = interpret.eval_jaxpr(closed, [P, X], names={"b", "c"}, on_name=on_name)
    a = jax.nn.relu(X @ P)
    np.testing.assert_allclose(seen["b"], 2 * a, rtol=1e-6)
    np.testing.assert_allclose(seen["c"], jnp.tanh(2 * a + 1.0), rtol=1e-6)
    np.testing.assert_allclose(out, jnp.tanh(2 * a + 1.0).sum(), rtol=1e-6)
    assert "a" not in seen  # only the names asked for


def test_custom_derivatives_kept_when_not_entered():
    # relu's custom JVP gives gradient 0 at 0; re-evaluating its body would change that.
    def f(x):
        return checkpoint_name(jax.nn.relu(x), "r").sum()

    x = jnp.array([0.0, 1.0, -1.0])
    closed = jax.make_jaxpr(f)(x)

    def through_interpreter(x):
        return interpret.eval_jaxpr(closed, [x], names={"r"}, on_name=lambda k, v: v)[0]

    g = jax.grad(through_interpreter)
    np.testing.assert_array_equal(g(x), jax.grad(f)(x))


def test_rules_replace_a_primitive_everywhere():
    closed = jax.make_jaxpr(program)(P, X)
    rules = {"tanh": lambda eqn, invals: [jnp.sin(invals[0])]}
    (out,) = interpret.eval_jaxpr(closed, [P, X], rules=rules)
    np.testing.assert_allclose(out, jnp.sin(2 * jax.nn.relu(X @ P)).sum(), rtol=1e-6)


def test_name_inside_a_loop_is_refused():
    def f(x):
        return jax.lax.scan(lambda c, xi: (c + checkpoint_name(xi, "step"), None), 0.0, x)[0]

    closed = jax.make_jaxpr(f)(jnp.ones(3))
    assert interpret.names_in(closed) == ["step"]
    with pytest.raises(ValueError, match="scan"):
        interpret.eval_jaxpr(closed, [jnp.ones(3)], names={"step"}, on_name=lambda k, v: v)
    # Not asking for it evaluates normally.
    (out,) = interpret.eval_jaxpr(closed, [jnp.ones(3)])
    assert float(out) == 3.0
