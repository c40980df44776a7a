"""Timing helpers for the benchmark suite: compile and steady state apart, floors and peers.

Every timing blocks on the result (``jax.block_until_ready``), so asynchronous dispatch never
hides work. A method is compared with its *floor* (the fastest plain-JAX way to run exactly the
forward/backward passes the method must run) and optionally with a *peer* (a PyTorch library),
all measured in the same process with interleaved rounds, so the ratios are not skewed by
the machine drifting between measurements.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax


class Timing(NamedTuple):
    """Compile time (first call, seconds; ``nan`` for non-JAX callables) and steady-state times."""

    name: str
    compile_s: float
    times_s: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)


def _block(out: Any) -> Any:
    return jax.block_until_ready(out)


def compile_time(fn: Callable, *args) -> float:
    """Seconds to lower and compile a jitted ``fn`` for ``args`` (the first call's extra cost)."""
    t = time.perf_counter()
    fn.lower(*args).compile()
    return time.perf_counter() - t


def measure(
    cases: dict[str, tuple[Callable, Sequence[Any]]],
    *,
    rounds: int = 30,
    warmup: int = 3,
) -> dict[str, Timing]:
    """Time several callables on their arguments with interleaved rounds.

    Args:
      cases: name to ``(fn, args)``. A ``jax.jit``-wrapped ``fn`` also gets its compile time.
      rounds: timed calls per case.
      warmup: untimed calls per case first (compilation, caches).

    Returns:
      name to :class:`Timing`.
    """
    compiles = {}
    for name, (fn, args) in cases.items():
        compiles[name] = compile_time(fn, *args) if hasattr(fn, "lower") else float("nan")
        for _ in range(warmup):
            _block(fn(*args))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (fn, args) in cases.items():
            t = time.perf_counter()
            _block(fn(*args))
            times[name].append(time.perf_counter() - t)
    return {name: Timing(name, compiles[name], times[name]) for name in cases}


def report(title: str, timings: dict[str, Timing], *, baseline: str) -> dict[str, float]:
    """Print a small table (median ms, compile s, ratio to ``baseline``) and return the ratios."""
    base = timings[baseline].median_s
    ratios = {name: t.median_s / base for name, t in timings.items()}
    print(f"\n{title}")
    print(f"  {'case':<28} {'median ms':>10} {'compile s':>10} {'x ' + baseline:>14}")
    for name, t in timings.items():
        print(f"  {name:<28} {t.median_s * 1e3:>10.3f} {t.compile_s:>10.3f} {ratios[name]:>14.3f}")
    return ratios


def run_benchmark(benchmark, fn: Callable, *args, rounds: int = 30) -> Any:
    """Record ``fn(*args)`` (already compiled by a warm-up call) with pytest-benchmark."""
    _block(fn(*args))
    return benchmark.pedantic(lambda: _block(fn(*args)), rounds=rounds, warmup_rounds=2)
