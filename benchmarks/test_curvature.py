"""Curvature (top eigenvalues, trace, density) against its HVP floor and PyHessian.

Case: the digits CNN (10 epochs) over its 1,347 training images, cross-entropy (batch mean).
The floor of an estimator is ``n_hvp x`` one Hessian-vector product over the whole dataset
(``visjax.curvature.hvp``, the faster of one batch and chunks of 128, median of rounds after
compilation): the HVPs an estimator cannot avoid. PyHessian 0.1 runs on the same weights and data
(one batch, ``cuda=False``); its single-batch path keeps the gradient graph, so each of its HVPs
is one double-backward without a new forward pass. All timings exclude compilation (one warm-up
call first). Each estimator is also timed as the user calls it, with no ``batch_size`` (the
default ``"auto"``; rows ending "default"). PyHessian's ``density`` calls ``torch.eig``
(removed in torch 2): a shim backed by ``torch.linalg.eigh`` is installed only for that call
(``docs/peers.md``).
"""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from benchmarks.harness import measure
from visjax.curvature import hvp, spectral_density, top_eigenvalues, trace
from visjax.curvature.spectrum import apply_linearized, linearized_gradient
from visjax.landscape import model_losses
from visjax.zoo import load_digits
from visjax.zoo.pretrained import trained_digits_cnn

ROWS: list[tuple] = []
STARTS = 5  # random start vectors for the top-1 cases (median time and HVPs; PyHessian likewise)
BS = 128  # data chunk for the estimators (the faster HVP here; the floor takes the faster)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = trained_digits_cnn(epochs=10, cache=tmp_path_factory.mktemp("c")).model
    train = load_digits().train
    data = (jnp.asarray(train.x), jnp.asarray(train.y))
    loss = model_losses(model)["cross_entropy"]
    return model, data, loss


def timed(fn, rounds=1):
    """Warm ``fn`` up (compile), then time ``rounds`` calls: (median s, last result)."""
    jax.block_until_ready(fn())
    times, out = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def pyhessian_object(model, data):
    """PyHessian's ``hessian`` on a torch copy of the CNN; None (with a message) without torch."""
    try:
        from benchmarks.peers import bridge

        torch = bridge.import_torch()
        pyh = bridge.import_peer("pyhessian")
    except ImportError as e:
        print(f"\nPyHessian parts skipped: torch/PyHessian not importable ({e})")
        return None, None
    torch.manual_seed(0)
    tm = bridge.torch_digits_cnn(model.params)
    x = bridge.to_torch_input(np.asarray(data[0]))
    y = torch.as_tensor(np.asarray(data[1]).astype("int64"))
    with warnings.catch_warnings():
        # torch warns that backward(create_graph=True) makes a reference cycle: PyHessian's design.
        warnings.simplefilter("ignore", UserWarning)
        h = pyh.hessian(tm, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    return torch, h


def peer(fn):
    """Run a PyHessian call with its create_graph warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn()


def torch_eig_shim(torch):
    """``torch.eig(T, eigenvectors=True)`` of torch 1 for a symmetric ``T``, via ``eigh``."""

    def eig(a, eigenvectors=False):
        w, v = torch.linalg.eigh(a)
        values = torch.stack([w, torch.zeros_like(w)], dim=1)
        return values, (v if eigenvectors else torch.empty(0))

    return eig


def row(case, ours, n_hvp, floor_hvp, peer_s):
    floor = floor_hvp(n_hvp) if callable(floor_hvp) else n_hvp * floor_hvp
    ROWS.append((case, ours, n_hvp, floor, ours / floor, peer_s, peer_s / ours if peer_s else None))


def print_table():
    print(
        f"\n{'case':<42} {'visjax s':>9} {'n_hvp':>6} {'floor s':>8} {'vj/floor':>8}"
        f" {'PyHess s':>9} {'PyH/vj':>7}"
    )
    for case, ours, n, floor, ratio, peer_s, speed in ROWS:
        p = f"{peer_s:9.3f}" if peer_s is not None else f"{'-':>9}"
        s = f"{speed:7.2f}" if speed is not None else f"{'-':>7}"
        print(f"{case:<42} {ours:9.3f} {n:6d} {floor:8.3f} {ratio:8.2f} {p} {s}")


def test_curvature_vs_floor_and_pyhessian(benchmark, setup, monkeypatch):
    model, data, loss = setup
    params = model.params
    key = jax.random.key(0)
    v = jax.tree.map(lambda p: jax.random.normal(key, p.shape, p.dtype), params)
    info = benchmark.extra_info

    # ---- HVP floor
    hv = {b: (lambda b=b: hvp(loss, params, v, data=data, batch_size=b)) for b in (None, 128)}
    hv["auto (default)"] = lambda: hvp(loss, params, v, data=data)
    t = measure({f"hvp batch_size={b}": (f, ()) for b, f in hv.items()}, rounds=10, warmup=2)
    floor_hvp = min(x.median_s for n, x in t.items() if "default" not in n)
    torch, h = pyhessian_object(model, data)
    torch_hvp_s = None
    if h is not None:
        pyh_utils = __import__("pyhessian.utils", fromlist=["hessian_vector_product"])
        tv = [torch.randn(p.size()) for p in h.params]

        def torch_hvp():
            return pyh_utils.hessian_vector_product(h.gradsH, h.params, tv)

        peer(torch_hvp)
        runs = []
        for _ in range(10):
            t0 = time.perf_counter()
            peer(torch_hvp)
            runs.append(time.perf_counter() - t0)
        torch_hvp_s = float(np.median(runs))
    # The gradient linearised once (jax.linearize), then tangent passes only: what the
    # estimators do when the residuals fit (visjax.curvature.spectrum.Matvec).
    xs = ravel_pytree(v)[0][None]
    lin = linearized_gradient(loss, params, data, "auto")
    t_lin = measure(
        {
            "linearize": (lambda: linearized_gradient(loss, params, data, "auto"), ()),
            "linearized apply": (lambda: apply_linearized(lin, params, xs), ()),
        },
        rounds=10,
        warmup=2,
    )
    lin_s, apply_s = t_lin["linearize"].median_s, t_lin["linearized apply"].median_s
    t |= t_lin

    def floor_n(n):  # the fastest way to run n products: n full HVPs, or linearise + n tangents
        return min(n * floor_hvp, lin_s + n * apply_s)

    print("\nOne HVP over 1,347 images (median):")
    for name, x in t.items():
        print(f"  visjax {name:<24} {x.median_s * 1e3:8.2f} ms")
    if torch_hvp_s is not None:
        print(f"  PyHessian hessian_vector_product  {torch_hvp_s * 1e3:8.2f} ms (graph kept)")
    info.update(
        {f"{n}_s": x.median_s for n, x in t.items()}
        | {"hvp_floor_s": floor_hvp, "torch_hvp_s": torch_hvp_s, "linearize_s": lin_s}
    )

    # ---- top eigenvalues
    def eig(k, algorithm, tol, seed=0, **bs):
        bs = bs or {"batch_size": BS}
        return top_eigenvalues(
            loss,
            params,
            data=data,
            k=k,
            algorithm=algorithm,
            tol=tol,
            key=jax.random.key(seed),
            **bs,
        )

    def over_starts(fn, starts):
        """Median seconds and HVPs over ``starts`` random start vectors (a start can be lucky;
        PyHessian is timed over as many)."""
        times, hvps, res = [], [], None
        for seed in range(starts):
            if seed == 0:
                s, res = timed(lambda: fn(0))  # with a warm-up call (compile)
            else:
                t0 = time.perf_counter()
                res = jax.block_until_ready(fn(seed))
                s = time.perf_counter() - t0
            times.append(s)
            hvps.append(res.n_hvp)
        return float(np.median(times)), int(np.median(hvps)), res

    if h is not None:  # count PyHessian's products
        pyh_hessian = __import__("pyhessian.hessian", fromlist=["hessian_vector_product"])
        counter = {"n": 0}
        plain_hvp = pyh_hessian.hessian_vector_product

        def counted_hvp(*args, **kwargs):
            counter["n"] += 1
            return plain_hvp(*args, **kwargs)

        monkeypatch.setattr(pyh_hessian, "hessian_vector_product", counted_hvp)

    checks = {}
    for k in (1, 3):
        peer_s, peer_vals = None, None
        starts = STARTS if k == 1 else 1
        if h is not None:
            peer(lambda k=k: h.eigenvalues(maxIter=100, tol=1e-3, top_n=k))  # warm-up
            peer_times, peer_hvps = [], []
            for seed in range(1, starts + 1):
                torch.manual_seed(seed)
                counter["n"] = 0
                t0 = time.perf_counter()
                out = peer(lambda k=k: h.eigenvalues(maxIter=100, tol=1e-3, top_n=k))[0]
                peer_times.append(time.perf_counter() - t0)
                peer_hvps.append(counter["n"])
                peer_vals = np.array(out) if peer_vals is None else peer_vals
            peer_s = float(np.median(peer_times))
            info[f"pyhessian top-{k}_n_hvp"] = peer_hvps
            print(f"  PyHessian top-{k}: {peer_s:.3f} s, HVPs over {starts} starts {peer_hvps}")
        for method, tol in (("lanczos", 1e-4), ("lanczos", 1e-3), ("power", 1e-3)):
            s, n_hvp, res = over_starts(
                lambda seed, k=k, m=method, tl=tol: eig(k, m, tl, seed), starts
            )
            case = f"top-{k} {method} tol={tol:g}"
            row(case, s, n_hvp, floor_n, peer_s)
            vals = np.asarray(res.eigenvalues)
            info[f"{case}_s"], info[f"{case}_n_hvp"] = s, n_hvp
            info[f"{case}_values"] = vals.tolist()
            checks[(k, method)] = vals
            if peer_vals is not None:
                rel = np.abs(vals - peer_vals) / np.abs(peer_vals)
                info[f"{case}_rel_vs_pyhessian"] = rel.tolist()
                print(f"  {case}: {vals} vs PyHessian {peer_vals} (rel {rel.max():.1e})")
            # The user's call: no batch_size (the default "auto"), same method settings.
            s, n_hvp, res = over_starts(
                lambda seed, k=k, m=method, tl=tol: eig(k, m, tl, seed, batch_size="auto"), starts
            )
            row(f"{case} default", s, n_hvp, floor_n, peer_s)
            info[f"{case} default_s"], info[f"{case} default_n_hvp"] = s, n_hvp
        if peer_s is not None:
            info[f"pyhessian top-{k}_s"], info[f"pyhessian top-{k}_values"] = (
                peer_s,
                peer_vals.tolist(),
            )
    lam = checks[(1, "lanczos")][0]
    for (k, method), vals in checks.items():
        # PyHessian's power iteration stops on a 1e-3 change of successive values.
        assert abs(vals[0] - lam) <= 1e-3 * abs(lam), (k, method, vals, lam)

    # ---- trace
    n_peer, peer_s, peer_tr = 100, None, None
    if h is not None:
        peer(lambda: h.trace(maxIter=100, tol=1e-3))
        torch.manual_seed(2)
        t0 = time.perf_counter()
        samples = peer(lambda: h.trace(maxIter=100, tol=1e-3))
        peer_s = time.perf_counter() - t0
        n_peer, peer_tr = len(samples), float(np.mean(samples))
        info.update({"pyhessian_trace_s": peer_s, "pyhessian_trace_n": n_peer})
        info["pyhessian_trace"] = peer_tr
    # Plain Hutchinson (PyHessian's estimator) and deflated by 20 Lanczos steps with 10 probes:
    # the latter's standard error is far below the plain one's at the same number of HVPs.
    settings = [(n, pb, 0) for n in sorted({n_peer, 100}) for pb in (1, 8)] + [(10, 8, 20)]
    for n, pb, deflate in settings:

        def tr(n=n, pb=pb, d=deflate, **bs):
            bs = bs or {"batch_size": BS}
            return trace(
                loss,
                params,
                data=data,
                n_probes=n,
                probe_batch=pb,
                deflate=d,
                key=jax.random.key(3),
                **bs,
            )

        s, res = timed(tr)
        case = f"trace n={n} probe_batch={pb}" + (f" deflate={deflate}" if deflate else "")
        row(case, s, res.n_hvp, floor_n, peer_s if n == n_peer or deflate else None)
        s_def, _ = timed(lambda tr=tr: tr(batch_size="auto"))
        row(
            f"{case} default",
            s_def,
            res.n_hvp,
            floor_n,
            peer_s if n == n_peer or deflate else None,
        )
        info[f"{case} default_s"] = s_def
        info[f"{case}_s"], info[f"{case}_estimate"] = s, res.estimate
        info[f"{case}_stderr"] = res.stderr
        print(f"  {case}: {res.estimate:.3f} +- {res.stderr:.3f} ({res.n_hvp} HVPs)")
    if peer_tr is not None:
        peer_se = float(np.std(samples, ddof=1) / np.sqrt(n_peer))
        info["pyhessian_trace_stderr"] = peer_se
        print(f"  PyHessian trace ({n_peer} probes): {peer_tr:.3f} +- {peer_se:.3f}")

    # ---- density
    peer_s = None
    if h is not None:
        monkeypatch.setattr(torch, "eig", torch_eig_shim(torch), raising=False)
        peer(lambda: h.density(iter=100, n_v=1))
        torch.manual_seed(4)
        t0 = time.perf_counter()
        nodes, _ = peer(lambda: h.density(iter=100, n_v=1))
        peer_s = time.perf_counter() - t0
        monkeypatch.undo()
        info["pyhessian_density_s"] = peer_s
        info["pyhessian_density_max_node"] = float(np.max(nodes))
    s, res = timed(
        lambda: spectral_density(
            loss, params, data=data, n_probes=1, n_iter=100, key=key, batch_size=BS
        )
    )
    n_dens = int(np.isfinite(res.nodes).sum())
    row("density n_probes=1 n_iter=100", s, n_dens, floor_n, peer_s)
    s_def, _ = timed(lambda: spectral_density(loss, params, data=data, n_iter=100, key=key))
    row("density n_probes=1 n_iter=100 default", s_def, n_dens, floor_n, peer_s)
    info["density default_s"] = s_def
    info["density_s"], info["density_max_node"] = s, float(np.nanmax(res.nodes))
    print(f"  density: top node {np.nanmax(res.nodes):.4f} (top eigenvalue {lam:.4f})")

    print_table()
    info["table"] = [list(r) for r in ROWS]
    benchmark.pedantic(lambda: jax.block_until_ready(hv[None]()), rounds=5, warmup_rounds=1)
