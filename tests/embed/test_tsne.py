"""t-SNE: calibrated affinities, the exact gradient against autodiff of the KL divergence, the
optimiser's determinism, the reported KL, and bad arguments refused by name."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visjax.embed._affinity import affinities, calibrate, symmetrize
from visjax.embed.tsne import TSNE, repulsion_exact, tsne


def _blobs(n=60, d=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(3, d))
    return (centres[np.arange(n) % 3] + rng.normal(size=(n, d))).astype(np.float32)


def _dense(p, n):
    out = np.zeros((n, n))
    np.add.at(out, (np.asarray(p.rows), np.asarray(p.cols)), np.asarray(p.vals))
    return out


@pytest.mark.parametrize("perplexity", [5.0, 30.0])
def test_calibration_hits_the_target_entropy(perplexity):
    rng = np.random.default_rng(1)
    d = jnp.asarray(rng.gamma(2.0, 3.0, size=(300, 90)), jnp.float32)
    p, h = calibrate(d, perplexity)
    p64 = np.asarray(p, np.float64)
    np.testing.assert_allclose(p64.sum(axis=1), 1.0, atol=1e-5)
    entropy = -np.sum(p64 * np.log(np.maximum(p64, 1e-300)), axis=1)
    assert np.max(np.abs(entropy - np.log(perplexity))) < 1e-5
    assert np.max(np.abs(np.asarray(h) - np.log(perplexity))) < 1e-5


def test_symmetrized_affinities_sum_to_one_and_are_symmetric():
    x = _blobs(40)
    p = affinities(jnp.asarray(x), 5.0)
    dense = _dense(p, 40)
    np.testing.assert_allclose(dense.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(dense, dense.T, atol=1e-8)
    assert np.all(np.diff(np.asarray(p.rows)) >= 0)  # sorted by row (segment_sum's promise)
    assert np.all(np.diag(dense) == 0)
    # Built by hand: P = (P_cond + P_cond^T) / 2N with P_cond from the calibrated rows.
    indices = np.array([[2, 1], [0, 2], [1, 0]])
    p_cond = np.array([[0.75, 0.25], [0.5, 0.5], [1.0, 0.0]])
    got = _dense(symmetrize(indices, p_cond), 3)
    cond = np.zeros((3, 3))
    cond[np.arange(3)[:, None], indices] = p_cond
    np.testing.assert_allclose(got, (cond + cond.T) / 6, atol=1e-7)


@pytest.mark.parametrize("dof", [1.0, 0.5])
@pytest.mark.parametrize("batch_size", [None, 7, "auto"])
def test_exact_repulsion_matches_the_dense_sums(dof, batch_size):
    y = np.random.default_rng(2).normal(scale=3.0, size=(50, 2))
    diff = y[:, None, :] - y[None, :, :]
    w = (1 + np.sum(diff**2, axis=-1) / dof) ** -dof
    np.fill_diagonal(w, 0.0)
    forces, z = repulsion_exact(jnp.asarray(y, jnp.float32), dof=dof, batch_size=batch_size)
    np.testing.assert_allclose(float(z), w.sum(), rtol=1e-5)
    expected = np.sum((w ** ((dof + 1) / dof))[..., None] * diff, axis=1)
    np.testing.assert_allclose(np.asarray(forces), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dof", [1.0, 0.6])
def test_gradient_is_a_quarter_of_the_kl_divergence_gradient(dof):
    """openTSNE's gradient (attraction - repulsion / Z) is dKL/dy / 4, and the reported KL is
    KL(P || Q) from the dense formula."""
    from visjax.embed.tsne import _attraction, _kl

    x = _blobs(30)
    p = affinities(jnp.asarray(x), 5.0)
    dense = jnp.asarray(_dense(p, 30), jnp.float32)
    y = jnp.asarray(np.random.default_rng(3).normal(size=(30, 2)), jnp.float32)

    def kl(y):
        d2 = jnp.sum((y[:, None] - y[None]) ** 2, axis=-1)
        w = (1 + d2 / dof) ** -dof * (1 - jnp.eye(30))
        q = w / jnp.sum(w)
        mask = dense > 0
        ratio = jnp.where(mask, dense, 1.0) / jnp.where(mask, q, 1.0)
        return jnp.sum(jnp.where(mask, dense * jnp.log(ratio), 0.0))

    forces, z = repulsion_exact(y, dof=dof)
    ours = _attraction(y, p, dof) - forces / z
    np.testing.assert_allclose(4 * np.asarray(ours), np.asarray(jax.grad(kl)(y)), atol=1e-5)
    reported = _kl(y, p, dof=dof, method="exact", batch_size=None)
    np.testing.assert_allclose(float(reported), float(kl(y)), rtol=1e-4)


def test_tsne_is_deterministic_for_a_key_and_separates_blobs():
    x = _blobs(60)
    opts = {"perplexity": 10.0, "early_exaggeration_iter": 50, "n_iter": 60, "progress": False}
    a = tsne(x, key=jax.random.key(0), **opts)
    b = tsne(x, key=jax.random.key(0), **opts)
    c = tsne(x, key=jax.random.key(1), **opts)
    assert isinstance(a, TSNE) and a.method == "exact"
    assert a.embedding.shape == (60, 2)
    np.testing.assert_array_equal(np.asarray(a.embedding), np.asarray(b.embedding))
    assert not np.array_equal(np.asarray(a.embedding), np.asarray(c.embedding))
    assert np.isfinite(a.kl_divergence) and a.kl_divergence > 0
    # Each point's nearest embedded neighbour is in its own blob.
    e = np.asarray(a.embedding)
    d = np.sum((e[:, None] - e[None]) ** 2, axis=-1) + np.diag(np.full(60, np.inf))
    labels = np.arange(60) % 3
    assert np.mean(labels[np.argmin(d, axis=1)] == labels) == 1.0


def test_options_run():
    x = _blobs(40)
    init = np.random.default_rng(0).normal(scale=1e-4, size=(40, 3))
    r = tsne(
        x,
        key=jax.random.key(0),
        n_components=3,
        perplexity=5.0,
        dof=0.5,
        early_exaggeration_iter=10,
        n_iter=15,
        learning_rate=20.0,
        initialization=init,
        method="exact",
        batch_size=16,
        progress=False,
    )
    assert r.embedding.shape == (40, 3) and np.isfinite(np.asarray(r.embedding)).all()
    r = tsne(
        x,
        key=jax.random.key(0),
        perplexity=5.0,
        initialization="random",
        n_iter=0,
        early_exaggeration_iter=0,
        progress=False,
    )
    assert float(jnp.std(r.embedding[:, 0])) < 1e-3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"perplexity": 9.0}, "perplexity"),
        ({"perplexity": 0.0}, "perplexity"),
        ({"perplexity": True}, "perplexity"),
        ({"dof": -1.0}, "dof"),
        ({"early_exaggeration": 0}, "early_exaggeration"),
        ({"early_exaggeration_iter": -1}, "early_exaggeration_iter"),
        ({"n_iter": 1.5}, "n_iter"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"momentum": 1.0}, "momentum"),
        ({"initialization": "spectral"}, "initialization"),
        ({"initialization": np.zeros((3, 2))}, "initialization"),
        ({"method": "bh"}, "method"),
        ({"method": "fft", "n_components": 3}, "method"),
        ({"neighbors": "annoy"}, "neighbors"),
        ({"batch_size": 0}, "batch_size"),
        ({"progress": "yes"}, "progress"),
        ({"n_components": 0}, "n_components"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    x = _blobs(10)
    with pytest.raises(ValueError, match=f"`{match}`"):
        tsne(x, key=jax.random.key(0), **{"perplexity": 2.0, **kwargs})


def test_bad_data_and_key_are_refused():
    x = _blobs(10)
    with pytest.raises(ValueError, match=r"`x`.*4 rows"):
        tsne(x[:3], key=jax.random.key(0), perplexity=1.0)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"`x`.*NaN"):
        tsne(bad, key=jax.random.key(0), perplexity=2.0)
    with pytest.raises(ValueError, match=r"`x`.*2-D"):
        tsne(x[0], key=jax.random.key(0), perplexity=2.0)
    with pytest.raises(TypeError, match="`key`"):
        tsne(x, key=0, perplexity=2.0)


def test_fft_method_runs_and_its_gradient_is_close_to_the_exact_one():
    from visjax.embed.fft import repulsion_fft
    from visjax.embed.tsne import _kl

    x = _blobs(120)
    r = tsne(
        x,
        key=jax.random.key(0),
        perplexity=10.0,
        early_exaggeration_iter=30,
        n_iter=30,
        method="fft",
        progress=False,
    )
    assert r.method == "fft" and np.isfinite(np.asarray(r.embedding)).all()
    y = r.embedding
    fe, ze = repulsion_exact(y)
    ff, zf = repulsion_fft(y)
    assert np.linalg.norm(fe / ze - ff / zf) / np.linalg.norm(fe / ze) < 1e-2
    # The reported KL is of the embedding the last step started from (openTSNE's convention).
    before = tsne(
        x,
        key=jax.random.key(0),
        perplexity=10.0,
        early_exaggeration_iter=30,
        n_iter=29,
        method="fft",
        progress=False,
    ).embedding
    exact_kl = _kl(before, r.affinities, dof=1.0, method="exact", batch_size=None)
    np.testing.assert_allclose(r.kl_divergence, float(exact_kl), rtol=1e-2)


_PEAK = """
import sys
import numpy as np, jax, jax.numpy as jnp
from visjax.embed import tsne
n = int(sys.argv[1])
rng = np.random.default_rng(0)
x = (rng.normal(scale=4.0, size=(10, 50))[rng.integers(0, 10, n)] + rng.normal(size=(n, 50)))
jax.block_until_ready(jnp.zeros(1))
rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")][0]
r = tsne(x.astype(np.float32), key=jax.random.key(0), early_exaggeration_iter=10, n_iter=10,
         method="fft", progress=False)
np.asarray(r.embedding)
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(hwm - rss)
"""


def _peak_kib(n: int) -> int:
    """The peak resident memory a fresh process adds running ``tsne`` on ``n`` points (KiB; XLA's
    buffers included, which tracemalloc does not see)."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(n)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_memory_grows_linearly():
    # No N x N matrix: 4x the points must cost well under the 16x an N^2 buffer would (exact
    # neighbour search in chunks, sparse P, FFT repulsion). Measured: see the README.
    small, large = _peak_kib(5_000), _peak_kib(20_000)
    assert large < 8 * small, (small, large)
    assert large < 1_500_000, large  # KiB: 20,000 points under 1.5 GiB


def test_padded_attraction_with_hub_rows_matches_segment_sum():
    # One hub row linked to every point: padding to it would triple P, so rows are cut at the
    # 75th percentile of their lengths and the hub's tail goes through a segment_sum.
    import importlib

    mod = importlib.import_module("visjax.embed.tsne")
    n = 60
    rng = np.random.default_rng(0)
    pairs = {(i, (i + 1) % n) for i in range(n)} | {(0, j) for j in range(1, n)}
    pairs |= {(j, i) for i, j in pairs}
    rows, cols = np.array(sorted(pairs)).T
    p = mod.Affinities(
        jnp.asarray(rows, jnp.int32),
        jnp.asarray(cols, jnp.int32),
        jnp.asarray(rng.uniform(size=rows.size), jnp.float32),
    )
    cols_pad, vals_pad, rest = mod._padded(p, n)
    assert cols_pad.shape[1] < n - 1 and rest is not None
    y = jnp.asarray(rng.normal(size=(n, 2)), jnp.float32)
    np.testing.assert_allclose(
        mod._attraction_padded(y, cols_pad, vals_pad, rest, 1.0),
        mod._attraction(y, p, 1.0),
        rtol=1e-5,
        atol=1e-6,
    )


_FFT_TWICE = """
import sys
import numpy as np, jax
from visjax.embed import tsne
rng = np.random.default_rng(0)
x = (rng.normal(scale=6.0, size=(3, 5))[np.arange(150) % 3] + rng.normal(size=(150, 5)))
opts = dict(method="fft", perplexity=10.0, early_exaggeration_iter=30, n_iter=40, progress=False)
a, b = (np.asarray(tsne(x.astype(np.float32), key=jax.random.key(0), **opts).embedding)
        for _ in range(2))
print(float(np.abs(a - b).max() / np.ptp(a)))
"""


def test_fft_tsne_same_key_same_embedding():
    """The FFT path's only nondeterminism is XLA:CPU's multithreaded FFT (last bits vary between
    calls): close in one process, bit-identical with the threaded Eigen/FFT path switched off."""
    runs = {}
    for name, flags in (("threaded", ""), ("single", "--xla_cpu_multi_thread_eigen=false")):
        env = {**os.environ, "XLA_FLAGS": flags}
        out = subprocess.run(
            [sys.executable, "-c", _FFT_TWICE],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        runs[name] = float(out.stdout.split()[-1])
    assert runs["single"] == 0.0
    assert runs["threaded"] < 1e-3
