"""Loss-landscape sweeps against their floor and the loss-landscapes package.

Case: the digits CNN over its 1,347 training images, a filter-normalised random plane, 21x21.
The floor is the fastest way to run exactly the sweep's forward passes: the loss over the dataset
(one batch, or chunks of 128, whichever is faster here) at 441 parameter vectors, inside one jit
(``lax.map`` over the points; each point's weights differ by a negligible shift, so XLA cannot
hoist the pass out of the loop), without the direction arithmetic.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.harness import measure, run_benchmark
from visjax.base.batching import chunked_sum
from visjax.landscape import model_losses, plane, random_plane
from visjax.zoo import load_digits
from visjax.zoo.pretrained import trained_digits_cnn

STEPS = 21


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = trained_digits_cnn(epochs=10, cache=tmp_path_factory.mktemp("c")).model
    train = load_digits().train
    data = (jnp.asarray(train.x), jnp.asarray(train.y))
    d1, d2 = random_plane(model.params, key=jax.random.key(0))
    return model, data, d1, d2


def forward_loss(model, data, chunk):
    loss = model_losses(model)["cross_entropy"]

    def part(x, y):
        return loss(model.params, (x, y)) * x.shape[0]

    return chunked_sum(part, *data, batch_size=chunk) / data[0].shape[0]


def floor_points(model, data, n_points, chunk):
    def one(i):
        params = jax.tree.map(lambda p: p + i * 1e-12, model.params)
        return forward_loss(model.replace(params=params), data, chunk)

    return jax.lax.map(one, jnp.arange(n_points, dtype=jnp.float32))


def loss_landscapes_plane(model, data):
    """The loss-landscapes package's random_plane on the same weights, or None without peers."""
    try:
        from benchmarks.peers import bridge

        bridge.import_torch()
    except ImportError:
        return None
    import torch

    ll = bridge.import_peer("loss_landscapes")
    metrics = bridge.import_peer("loss_landscapes.metrics")
    tm = bridge.torch_digits_cnn(model.params)
    x = bridge.to_torch_input(np.asarray(data[0]))
    y = torch.as_tensor(np.asarray(data[1]).astype("int64"))
    metric = metrics.Loss(torch.nn.CrossEntropyLoss(), x, y)

    def run():
        with torch.no_grad():
            return ll.random_plane(
                tm, metric, distance=1, steps=STEPS, normalization="filter", deepcopy_model=True
            )

    return run


def test_plane_21x21_vs_floor_and_loss_landscapes(benchmark, setup):
    model, data, d1, d2 = setup
    loss = model_losses(model)["cross_entropy"]
    xs = np.linspace(-1, 1, STEPS)

    def sweep():
        return plane(loss, model.params, d1, d2, xs, xs, data=data, batch_size=128)

    floor = jax.jit(floor_points, static_argnums=(2, 3))
    timings = measure(
        {
            "441 passes, one batch": (floor, (model, data, STEPS * STEPS, None)),
            "441 passes, chunks of 128": (floor, (model, data, STEPS * STEPS, 128)),
        },
        rounds=3,
        warmup=1,
    )
    floor_s = min(t.median_s for t in timings.values())
    sweep()  # compile
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        sweep()
        runs.append(time.perf_counter() - t)
    ours = float(np.median(runs))
    peer = loss_landscapes_plane(model, data)
    peer_s = None
    if peer is not None:
        peer()
        t = time.perf_counter()
        peer()
        peer_s = time.perf_counter() - t
    print(f"\n21x21 plane, digits CNN, 1,347 images: visjax {ours:.2f} s, floor {floor_s:.2f} s")
    for name, t in timings.items():
        print(f"  floor: {name:<26} {t.median_s:8.2f} s")
    print(f"  visjax / floor = {ours / floor_s:.2f}")
    if peer_s is not None:
        print(f"  loss-landscapes {peer_s:.2f} s: {peer_s / ours:.2f}x visjax")
    benchmark.extra_info.update({"visjax_s": ours, "floor_s": floor_s, "loss_landscapes_s": peer_s})
    run_benchmark(benchmark, sweep, rounds=1)


def test_time_linear_in_points(setup):
    model, data, d1, d2 = setup
    loss = model_losses(model)["cross_entropy"]
    times = {}
    for n in (11, 21, 31):
        xs = np.linspace(-1, 1, n)
        plane(loss, model.params, d1, d2, xs, xs, data=data, batch_size=128)  # compile
        t = time.perf_counter()
        plane(loss, model.params, d1, d2, xs, xs, data=data, batch_size=128)
        times[n * n] = time.perf_counter() - t
    per_point = {p: t / p * 1e3 for p, t in times.items()}
    print("\nms per point by grid size:", {p: round(v, 2) for p, v in per_point.items()})
    assert max(per_point.values()) < 1.5 * min(per_point.values())
