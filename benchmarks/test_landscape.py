"""Loss-landscape sweeps against their floor and the loss-landscapes package.

Case: the digits CNN over its 1,347 training images, a filter-normalised random plane, 21x21.
The floor is the fastest way to run exactly the sweep's forward passes: the loss over the dataset
(one batch, chunks of 128 or of the default's size, whichever is fastest here) at 441 parameter
vectors, inside one jit (``lax.map`` over the points; each point's weights differ by a negligible
shift, so XLA cannot hoist the pass out of the loop), without the direction arithmetic.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.harness import measure, run_benchmark
from visjax.base.batching import chunked_sum
from visjax.base.data import data_batch_size
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
    """The user's call (no ``batch_size``: "auto") next to tuned sizes, one batch, the floor and
    loss-landscapes, interleaved in one run; each sweep's first call (compile + run) too."""
    model, data, d1, d2 = setup
    loss = model_losses(model)["cross_entropy"]
    xs = np.linspace(-1, 1, STEPS)
    auto = data_batch_size("auto", lambda b: jnp.stack([loss(model.params, b)]), data)

    def sweep(**kw):
        return lambda: plane(loss, model.params, d1, d2, xs, xs, data=data, **kw)

    sweeps = {
        f"default (auto: {auto})": sweep(),
        "batch_size=128": sweep(batch_size=128),
        "batch_size=None": sweep(batch_size=None),
    }
    first = {}
    for name, fn in sweeps.items():
        t = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - t
    floor = jax.jit(floor_points, static_argnums=(2, 3))
    cases = {name: (fn, ()) for name, fn in sweeps.items()}
    cases["floor, one batch"] = (floor, (model, data, STEPS * STEPS, None))
    for chunk in sorted({128, auto} - {None}):
        cases[f"floor, chunks of {chunk}"] = (floor, (model, data, STEPS * STEPS, chunk))
    peer = loss_landscapes_plane(model, data)
    if peer is not None:
        cases["loss-landscapes"] = (peer, ())
    # the sweeps are warm (first calls above); the floor compiles in measure, the peer warms up
    timings = measure(cases, rounds=3, warmup=1)
    floor_s = min(t.median_s for k, t in timings.items() if k.startswith("floor"))
    default = next(iter(sweeps))
    ours = timings[default].median_s
    tuned = timings["batch_size=128"].median_s
    peer_s = timings["loss-landscapes"].median_s if peer is not None else None
    print("\n21x21 plane, digits CNN, 1,347 images (steady state, median of 3; first call)")
    for name, t in timings.items():
        extra = f"   first call {first[name]:.2f} s" if name in first else ""
        print(f"  {name:<24} {t.median_s:8.2f} s{extra}")
    print(f"  default / floor = {ours / floor_s:.2f}, / batch_size=128 = {ours / tuned:.2f}")
    if peer_s is not None:
        print(f"  loss-landscapes / default = {peer_s / ours:.2f}x")
    benchmark.extra_info.update(
        {
            "default_s": ours,
            "default_first_call_s": first[default],
            "auto_batch_size": auto,
            "visjax_s": tuned,
            "one_batch_s": timings["batch_size=None"].median_s,
            "floor_s": floor_s,
            "loss_landscapes_s": peer_s,
        }
    )
    run_benchmark(benchmark, sweeps[default], rounds=1)


def test_time_linear_in_points(setup):
    model, data, d1, d2 = setup
    loss = model_losses(model)["cross_entropy"]
    times = {}
    for n in (11, 21, 31):
        xs = np.linspace(-1, 1, n)
        plane(loss, model.params, d1, d2, xs, xs, data=data)  # compile
        t = time.perf_counter()
        plane(loss, model.params, d1, d2, xs, xs, data=data)
        times[n * n] = time.perf_counter() - t
    per_point = {p: t / p * 1e3 for p, t in times.items()}
    print("\nms per point by grid size:", {p: round(v, 2) for p, v in per_point.items()})
    assert max(per_point.values()) < 1.5 * min(per_point.values())
