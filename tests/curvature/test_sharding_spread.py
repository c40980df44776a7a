"""The data axis sharded over 8 simulated devices equals one device; the batch-to-batch spread."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.curvature import batch_spread, hvp, trace
from visjax.curvature.hvp import data_mesh

SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from visjax.curvature import ggn_vp, hvp, top_eigenvalues, trace
    from visjax.zoo import digits_cnn
    assert len(jax.devices()) == 8, jax.devices()
    x = jax.random.normal(jax.random.key(1), (100, 6))  # 100 = 8 * 12 + 4 left over
    y = jnp.tanh(x @ jnp.arange(12.0).reshape(6, 2) / 10)
    params = {"w1": jax.random.normal(jax.random.key(2), (6, 5)) * 0.5,
              "w2": jax.random.normal(jax.random.key(3), (5, 2)) * 0.5}
    def loss(p, b):
        xb, yb = b
        return ((jnp.tanh(xb @ p["w1"]) @ p["w2"] - yb) ** 2).sum(-1).mean()
    v = jax.tree.map(lambda a: jnp.ones_like(a) / 3, params)
    one = [jax.devices()[0]]
    errs = {}
    def rel(a, b):
        a, b = np.concatenate([np.ravel(t) for t in jax.tree.leaves(a)]), \\
               np.concatenate([np.ravel(t) for t in jax.tree.leaves(b)])
        return float(np.abs(a - b).max() / np.abs(b).max())
    for bs in (None, 5):
        ref = hvp(loss, params, v, data=(x, y), batch_size=bs, devices=one)
        errs[f"hvp bs={bs}"] = rel(hvp(loss, params, v, data=(x, y), batch_size=bs), ref)
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("a", "b"))
    ref = hvp(loss, params, v, data=(x, y), devices=one)
    errs["hvp 2-d mesh"] = rel(hvp(loss, params, v, data=(x, y), devices=mesh), ref)
    xs = jax.device_put(x[:96], NamedSharding(Mesh(jax.devices(), ("d",)), P("d")))
    ref = hvp(loss, params, v, data=(x[:96], y[:96]), devices=one)
    errs["hvp pre-sharded"] = rel(hvp(loss, params, v, data=(xs, y[:96])), ref)
    key = jax.random.key(0)
    a = top_eigenvalues(loss, params, data=(x, y), k=2, key=key).eigenvalues
    b = top_eigenvalues(loss, params, data=(x, y), k=2, key=key, devices=one).eigenvalues
    errs["top_eigenvalues"] = rel(a, b)
    a = trace(loss, params, data=(x, y), n_probes=4, key=key).samples
    b = trace(loss, params, data=(x, y), n_probes=4, key=key, devices=one).samples
    errs["trace samples"] = rel(a, b)
    model = digits_cnn("function")
    img = jax.random.uniform(jax.random.key(4), (20, 8, 8, 1))
    lab = jnp.arange(20) % 10
    u = jax.tree.map(jnp.ones_like, model.params)
    ref = ggn_vp(model, model.params, u, data=(img, lab), devices=one)
    errs["ggn_vp"] = rel(ggn_vp(model, model.params, u, data=(img, lab)), ref)
    print(errs)
    assert all(e < 1e-5 for e in errs.values()), errs
    """
)


@pytest.mark.slow  # a subprocess with eight host devices (compiles every operator again)
def test_data_sharded_over_eight_devices_equals_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]


def test_data_mesh_resolution_and_bad_devices():
    assert data_mesh([jax.devices()[0]]) is None  # one device: no shard_map
    with pytest.raises(ValueError, match="`devices`"):
        data_mesh(["cpu:0"])
    with pytest.raises(ValueError, match="`devices`"):
        hvp(lambda p, b: (p * b).sum(), jnp.ones(2), jnp.ones(2), data=jnp.ones((3, 2)), devices=[])


def _quad_loss(p, x):
    return 0.5 * ((x * p) ** 2).sum(-1).mean()  # Hessian diag(mean x²)


def test_batch_spread_matches_each_batch():
    x = jax.random.normal(jax.random.key(0), (10, 3))
    p = jnp.ones(3)
    est = lambda d: trace(_quad_loss, p, data=d, n_probes=2, key=jax.random.key(1)).estimate  # noqa: E731
    out = batch_spread(est, data=x, n_batches=3)
    sq = np.asarray(x) ** 2
    want = [sq[i].sum(-1).mean() for i in np.array_split(np.arange(10), 3)]  # Rademacher: exact
    np.testing.assert_allclose(out.per_batch, want, rtol=1e-5)
    np.testing.assert_allclose(out.full, sq.sum(-1).mean(), rtol=1e-5)
    np.testing.assert_allclose(out.std, np.std(want, ddof=1), rtol=1e-5)
    assert out.batch_sizes.tolist() == [4, 3, 3]
    shuffled = batch_spread(est, data=x, n_batches=3, key=jax.random.key(2))
    assert not np.allclose(shuffled.per_batch, out.per_batch)
    np.testing.assert_allclose(shuffled.full, out.full)


def test_batch_spread_bad_input():
    x = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="`n_batches`"):
        batch_spread(lambda d: d.sum(), data=x, n_batches=5)
    with pytest.raises(ValueError, match="`n_batches`"):
        batch_spread(lambda d: d.sum(), data=x, n_batches=1)
    with pytest.raises(ValueError, match="non-finite"):
        batch_spread(lambda d: jnp.log(d - 1).sum(), data=x, n_batches=2)
