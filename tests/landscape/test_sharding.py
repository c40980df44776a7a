"""Grid points sharded over devices: 8 simulated devices and two processes equal one device."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from visjax.landscape.slices import plane

QUADRATIC = textwrap.dedent(
    """
    import numpy as np
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(37, 3)).astype(np.float32)
    P0 = {"w": np.array([0.5, -1.0, 2.0], np.float32), "b": np.array(0.3, np.float32)}
    D1 = {"w": np.array([1.0, 0.0, 0.5], np.float32), "b": np.array(0.0, np.float32)}
    D2 = {"w": np.array([0.0, 2.0, 0.0], np.float32), "b": np.array(1.0, np.float32)}
    XS, YS = np.linspace(-1, 1, 7), np.linspace(-2, 1, 5)  # 35 points: no device count divides

    def quadratic(params, batch):
        return (0.5 * ((params["w"] - batch) ** 2).sum(-1)).mean() + params["b"] ** 2
    """
)

EIGHT = QUADRATIC + textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    from jax.sharding import Mesh
    from visjax.landscape import model_losses
    from visjax.landscape.slices import interpolate, plane
    from visjax.zoo import digits_cnn
    assert len(jax.devices()) == 8, jax.devices()
    one = [jax.devices()[0]]
    errs = {}
    for strategy in ("map", "vmap", "loop"):
        for bs, block in ((None, None), (8, 3), (5, 13)):  # blocks 3, 13: padded to 8 or 16
            kw = dict(data=Y, strategy=strategy, batch_size=bs, block_size=block)
            ref = plane(quadratic, P0, D1, D2, XS, YS, devices=one, **kw)["loss"]
            got = plane(quadratic, P0, D1, D2, XS, YS, **kw)["loss"]
            errs[f"{strategy} bs={bs} block={block}"] = float(np.abs(got / ref - 1).max())
    ref = plane(quadratic, P0, D1, D2, XS, YS, data=Y, devices=one)["loss"]
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("a", "b"))
    on_mesh = plane(quadratic, P0, D1, D2, XS, YS, data=Y, devices=mesh)["loss"]
    errs["2-d mesh"] = float(np.abs(on_mesh - ref).max())
    three = plane(quadratic, P0, D1, D2, XS, YS, data=Y, devices=jax.devices()[:3], block_size=4)
    three = three["loss"]
    errs["3 devices"] = float(np.abs(three - ref).max())
    p1 = {"w": P0["w"] + 1, "b": P0["b"]}
    a = interpolate(quadratic, P0, p1, np.linspace(0, 1, 11), data=Y)["loss"]
    b = interpolate(quadratic, P0, p1, np.linspace(0, 1, 11), data=Y, devices=one)["loss"]
    errs["interpolate"] = float(np.abs(a - b).max())
    m = digits_cnn("function", seed=1)
    img = jax.random.uniform(jax.random.key(4), (40, 8, 8, 1))
    batch = (img, jnp.arange(40) % 10)
    d1 = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), m.params)
    d2 = jax.tree.map(lambda p: -0.05 * jnp.ones_like(p), m.params)
    losses = model_losses(m, "cross_entropy")
    xs = np.linspace(-1, 1, 5)
    a = plane(losses, m.params, d1, d2, xs, xs[:3], data=batch, batch_size=16)
    b = plane(losses, m.params, d1, d2, xs, xs[:3], data=batch, batch_size=16, devices=one)
    errs["digits cnn"] = float(np.abs(a["cross_entropy"] - b["cross_entropy"]).max())
    print(errs)
    assert all(e < 1e-6 for e in errs.values()), errs  # relative (float32 sums reordered)
    """
)

PROCESS = QUADRATIC + textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{sys.argv[1]}",
                               num_processes=2, process_id=int(sys.argv[2]))
    assert len(jax.devices()) == 4 and len(jax.local_devices()) == 2
    from visjax.landscape.slices import plane
    got = plane(quadratic, P0, D1, D2, XS, YS, data=Y, block_size=6)["loss"]  # 6: padded to 8
    np.save(sys.argv[3], got)
    """
)


def _cpu_env(n: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _reference():
    ns: dict = {}
    exec(QUADRATIC, ns)
    return plane(ns["quadratic"], ns["P0"], ns["D1"], ns["D2"], ns["XS"], ns["YS"], data=ns["Y"])[
        "loss"
    ]


@pytest.mark.slow  # a subprocess with eight host devices; two processes are in make test
def test_eight_devices_equal_one_with_padding():
    out = subprocess.run(
        [sys.executable, "-c", EIGHT], env=_cpu_env(8), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def test_two_processes_equal_one(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, str(port), str(i), str(tmp_path / f"p{i}.npy")],
            env=_cpu_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=180)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs), "\n".join(s[-2000:] for s in logs)
    ref = _reference()
    for i in range(2):  # every process holds the whole surface
        np.testing.assert_allclose(np.load(tmp_path / f"p{i}.npy"), ref, atol=1e-6)


def test_one_device_list_and_bad_devices():
    ns: dict = {}
    exec(QUADRATIC, ns)
    args = (ns["quadratic"], ns["P0"], ns["D1"], ns["D2"], ns["XS"], ns["YS"])
    a = plane(*args, data=ns["Y"], devices=[jax.devices()[0]])["loss"]
    np.testing.assert_array_equal(a, plane(*args, data=ns["Y"])["loss"])
    with pytest.raises(ValueError, match="`devices`"):
        plane(*args, data=ns["Y"], devices=["cpu:0"])
    with pytest.raises(ValueError, match="`devices`"):
        plane(*args, data=ns["Y"], devices=[])
