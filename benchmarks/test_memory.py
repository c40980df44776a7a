"""Peak memory of integrated gradients: bounded by ``batch_size``, not by ``n_steps``.

Each configuration runs in a fresh subprocess; its peak resident memory comes from
``resource.getrusage(RUSAGE_CHILDREN)`` after it exits.
"""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys, json, time
    import jax, jax.numpy as jnp
    from visjax import attribution as va
    from visjax.zoo import digits_cnn, load_digits
    steps, bs = int(sys.argv[1]), sys.argv[2]
    batch_size = None if bs == "None" else bs if bs == "auto" else int(bs)
    x = jnp.asarray(load_digits().test.x[:64])
    t0 = time.perf_counter()
    out = va.integrated_gradients(digits_cnn("function"), x, 3, n_steps=steps,
                                  rule="riemann_middle", batch_size=batch_size)
    out.block_until_ready()
    print(json.dumps({"seconds": time.perf_counter() - t0}))
    """
)


def test_ig_peak_memory_does_not_grow_with_steps(benchmark):
    # RUSAGE_CHILDREN keeps the maximum over all children, so measure each in its own process
    # tree: run this test's subprocesses from a helper process per configuration.
    results = {}
    # "auto" (the default) caps gradient work at 16 unrolled chunks (compile time), so its
    # chunks, and peak memory, grow with n_steps once 16 chunks of ~8 MiB no longer hold the rows.
    for steps, bs in ((1024, 64), (64, 64), (1024, None), (64, "auto"), (1024, "auto")):
        cmd = [sys.executable, "-c", MEASURE_ANY, SCRIPT, str(steps), str(bs)]
        results[f"{steps} steps, batch_size={bs}"] = json.loads(
            subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        )
    print("\nIG on 64 digits, peak RSS of a fresh process:")
    for name, r in results.items():
        print(f"  {name:<28} {r['peak_mb']:>8.0f} MB {r['seconds']:>7.2f} s")
    benchmark.extra_info.update(results)
    small = results["64 steps, batch_size=64"]["peak_mb"]
    large = results["1024 steps, batch_size=64"]["peak_mb"]
    assert large <= small * 1.15 + 30
    benchmark.pedantic(lambda: None, rounds=1)


PLANE_SCRIPT = textwrap.dedent(
    """
    import sys, json, time
    import jax, numpy as np
    from visjax.landscape import model_losses, plane, random_plane
    from visjax.zoo import digits_cnn, load_digits
    n = int(sys.argv[1])
    m = digits_cnn("function")
    train = load_digits().train
    d1, d2 = random_plane(m.params, key=jax.random.key(0))
    xs = np.linspace(-1, 1, n)
    t0 = time.perf_counter()
    plane(model_losses(m)["cross_entropy"], m.params, d1, d2, xs, xs,
          data=(train.x, train.y), batch_size=128)
    print(json.dumps({"seconds": time.perf_counter() - t0}))
    """
)


def test_landscape_peak_memory_is_flat_in_points(benchmark):
    results = {}
    for n in (11, 41):
        cmd = [sys.executable, "-c", MEASURE_ANY, PLANE_SCRIPT, str(n)]
        results[f"{n}x{n}"] = json.loads(
            subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        )
    print("\nplane sweep of the digits CNN, peak RSS of a fresh process:")
    for name, r in results.items():
        print(f"  {name:<8} {r['peak_mb']:>8.0f} MB {r['seconds']:>7.2f} s")
    benchmark.extra_info.update(results)
    assert results["41x41"]["peak_mb"] <= results["11x11"]["peak_mb"] * 1.15 + 30
    benchmark.pedantic(lambda: None, rounds=1)


MEASURE_ANY = textwrap.dedent(
    """
    import json, resource, subprocess, sys
    out = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]],
                         capture_output=True, text=True, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak, **json.loads(out.stdout)}))
    """
)


PERTURB_SCRIPT = textwrap.dedent(
    """
    import sys, json, time
    import jax.numpy as jnp
    from visjax import attribution as va
    from visjax.zoo import digits_cnn, load_digits
    method, size = sys.argv[1], int(sys.argv[2])
    batch_size = None if sys.argv[3] == "None" else int(sys.argv[3])
    x = jnp.asarray(load_digits().test.x[:256])
    m = digits_cnn("function")
    t0 = time.perf_counter()
    if method == "occlusion":  # size x size windows with stride size: (8 / size)^2 per digit
        out = va.occlusion(m, x, 3, window=(size, size, 1), strides=size, batch_size=batch_size)
    else:  # Score-CAM at conv1 (16 channels) or conv2 (32): one masked forward per channel
        out = va.score_cam(m, x, 3, layer={16: "conv1", 32: "conv2"}[size], batch_size=batch_size)
    out.block_until_ready()
    print(json.dumps({"seconds": time.perf_counter() - t0}))
    """
)


def test_perturbation_peak_memory_is_bounded_by_batch_size(benchmark):
    configs = {
        "occlusion, 4 windows, batch_size=512": ("occlusion", 4, 512),
        "occlusion, 64 windows, batch_size=512": ("occlusion", 1, 512),
        "occlusion, 64 windows, unchunked": ("occlusion", 1, None),
        "Score-CAM, 16 channels, batch_size=512": ("score_cam", 16, 512),
        "Score-CAM, 32 channels, batch_size=512": ("score_cam", 32, 512),
        "Score-CAM, 32 channels, unchunked": ("score_cam", 32, None),
    }
    results = {}
    for name, (method, size, bs) in configs.items():
        cmd = [sys.executable, "-c", MEASURE_ANY, PERTURB_SCRIPT, method, str(size), str(bs)]
        results[name] = json.loads(
            subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        )
    print("\nperturbation methods on 256 digits, peak RSS of a fresh process:")
    for name, r in results.items():
        print(f"  {name:<40} {r['peak_mb']:>8.0f} MB {r['seconds']:>7.2f} s")
    benchmark.extra_info.update(results)
    for few, many in (
        ("occlusion, 4 windows, batch_size=512", "occlusion, 64 windows, batch_size=512"),
        ("Score-CAM, 16 channels, batch_size=512", "Score-CAM, 32 channels, batch_size=512"),
    ):
        assert results[many]["peak_mb"] <= results[few]["peak_mb"] * 1.15 + 30
    benchmark.pedantic(lambda: None, rounds=1)
