"""Attribution with the batch split over devices: 8 simulated CPU devices equal one device."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

from visjax.attribution import integrated_gradients, noise_tunnel, occlusion, saliency
from visjax.base.sharding import device_mesh
from visjax.zoo import digits_cnn

EIGHT = textwrap.dedent(
    """
    import functools
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh
    from visjax.attribution import (
        exact_shapley, feature_ablation, integrated_gradients, kernel_shap, lime, noise_tunnel,
        occlusion, saliency, shapley_value_sampling,
    )
    from visjax.attribution.cam import ablation_cam, score_cam
    from visjax.attribution.masks import square_patches
    from visjax.base.sharding import _on_mesh
    from visjax.zoo import digits_cnn
    assert len(jax.devices()) == 8, jax.devices()
    one = [jax.devices()[0]]
    m = digits_cnn("function", seed=1)
    x = jax.random.uniform(jax.random.key(0), (11, 8, 8, 1))  # 11: padded to 16
    t = jnp.arange(11) % 10
    key = jax.random.key(3)
    mask = square_patches((8, 8, 1), 4)
    smooth = functools.partial(noise_tunnel, saliency, n_samples=5, stdev=0.1)
    ig_tunnel = functools.partial(
        noise_tunnel, integrated_gradients, n_samples=3, stdev=0.1, batch_size=16
    )
    cases = {
        "ig": lambda d: integrated_gradients(m, x, t, n_steps=8, devices=d),
        "ig chunked": lambda d: integrated_gradients(m, x, t, n_steps=8, batch_size=24, devices=d),
        "ig groups": lambda d: integrated_gradients(m, x, t, n_steps=32, devices=d),
        "smoothgrad": lambda d: smooth(devices=d)(m, x, t, key=key),
        "vargrad ig": lambda d: ig_tunnel(kind="vargrad", devices=d)(m, x, t, key=key, n_steps=4),
        "occlusion": lambda d: occlusion(m, x, t, window=(3, 3), devices=d),
        "feature ablation": lambda d: feature_ablation(m, x, t, mask=mask, baseline=0.5, devices=d),
        "shapley sampling": lambda d: shapley_value_sampling(
            m, x, t, mask=mask, n_samples=3, key=key, devices=d
        ),
        "exact shapley": lambda d: exact_shapley(m, x, t, mask=mask, devices=d),
        "kernel shap": lambda d: kernel_shap(m, x, t, mask=mask, n_samples=8, key=key, devices=d),
        "lime": lambda d: lime(m, x, t, mask=mask, n_samples=8, key=key, devices=d),
        "score cam": lambda d: score_cam(m, x, t, layer="conv2", devices=d),
        "ablation cam": lambda d: ablation_cam(m, x, t, layer="conv2", devices=d),
    }
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("a", "b"))
    errs = {}
    for name, run in cases.items():
        ref = np.asarray(run(one))
        for label, d in (("8", None), ("mesh", mesh), ("3", jax.devices()[:3])):
            if label != "8" and name not in ("ig", "occlusion"):
                continue
            before = _on_mesh._cache_size()
            got = np.asarray(run(d))
            if label == "8":  # a new program on the mesh: really sharded
                assert _on_mesh._cache_size() > before, name
            assert got.shape == ref.shape, (name, got.shape, ref.shape)
            scale = np.abs(ref).max()
            errs[f"{name} on {label}"] = float(np.abs(got - ref).max() / scale)
    print(errs)
    assert all(e < 1e-5 for e in errs.values()), errs  # relative to the largest attribution
    """
)


@pytest.mark.slow  # a subprocess with eight host devices, every method compiled twice
def test_eight_devices_equal_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", EIGHT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def test_one_device_is_the_single_device_program():
    assert device_mesh(None) is None or len(jax.local_devices()) > 1
    assert device_mesh([jax.devices()[0]]) is None
    m, x = digits_cnn("function"), jnp.ones((2, 8, 8, 1))
    a = integrated_gradients(m, x, 3, n_steps=4)
    b = integrated_gradients(m, x, 3, n_steps=4, devices=jax.devices()[:1])
    assert jnp.array_equal(a, b)


@pytest.mark.parametrize("bad", ["cpu", 3, [], ["cpu:0"]])
def test_bad_devices_name_the_argument(bad):
    m, x = digits_cnn("function"), jnp.ones((2, 8, 8, 1))
    with pytest.raises(ValueError, match="`devices`"):
        integrated_gradients(m, x, 3, n_steps=4, devices=bad)
    with pytest.raises(ValueError, match="`devices`"):
        occlusion(m, x, 3, window=3, devices=bad)
    with pytest.raises(ValueError, match="`devices`"):
        noise_tunnel(saliency, devices=bad)
