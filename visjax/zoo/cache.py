"""A cache of trained weights, so the demo and experiments train each model once.

An entry is a folder ``<cache>/<name>-<digest>/`` where ``digest`` hashes the entry's
configuration (model, data, seed, training settings). It holds the parameters saved with
orbax-checkpoint (``params/``), the training history and configuration as JSON, and, written last,
``manifest.json`` with the size and SHA-256 of every other file.

Writes are atomic: an entry is assembled in a temporary folder beside it and renamed into place,
so a writer killed mid-save leaves at most a temporary folder, never a partial entry; temporary
folders older than an hour (a live save takes seconds) are removed by the next write. Reading an
entry writes nothing, so a read-only cache serves the entries it holds. On reading, an entry whose
manifest is missing or whose files do not match it (truncated, corrupted, edited) is discarded and
retrained, never a crash. Files and folders get the permissions the umask gives (see
:mod:`visjax.base.io`).

The cache folder is ``$VISJAX_CACHE`` if set, else ``$XDG_CACHE_HOME/visjax`` (default
``~/.cache/visjax``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import orbax.checkpoint as ocp

from visjax.base.io import atomic_write_text, make_temp_dir
from visjax.model import Model
from visjax.zoo.train import History

_MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"
STALE_AFTER_S = 3600.0  # a temporary folder untouched this long belongs to a dead writer


class Trained(NamedTuple):
    """A trained model, its history and whether it came from the cache."""

    model: Model
    history: History
    from_cache: bool


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder, created if missing; raises ``OSError`` naming it if it is not writable.

    Args:
      path: an explicit folder; default ``$VISJAX_CACHE``, else ``$XDG_CACHE_HOME/visjax``
        (``~/.cache/visjax``).
    """
    path = _resolve(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise OSError(
            f"the visjax cache folder {str(path)!r} is not writable ({e.strerror or e}); "
            "set VISJAX_CACHE to a writable folder"
        ) from e
    return path


def _resolve(path: str | os.PathLike | None) -> Path:
    """The cache folder's path, without creating or probing it (reading needs neither)."""
    if path is None:
        env = os.environ.get("VISJAX_CACHE")
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = env if env else Path(base) / "visjax"
    return Path(path).expanduser()


def _remove_stale_temps(root: Path, *, older_than_s: float = STALE_AFTER_S) -> None:
    """Remove temporary folders left by writers killed mid-save.

    A folder counts as stale when neither it nor anything in it changed for ``older_than_s``: a
    live writer keeps adding files for the few seconds a save takes, so it is never raced. The age
    is used rather than the writer's PID, which a cache shared between machines or containers
    cannot check.
    """
    now = time.time()
    for tmp in root.glob(f"{_TMP_PREFIX}*"):
        try:
            newest = max((p.lstat().st_mtime for p in (tmp, *tmp.rglob("*"))), default=now)
        except OSError:  # removed meanwhile by another writer
            continue
        if now - newest > older_than_s:
            shutil.rmtree(tmp, ignore_errors=True)


def entry_name(name: str, config: Mapping[str, Any]) -> str:
    """The folder name of the entry for ``name`` and ``config`` (JSON-serialisable values)."""
    blob = json.dumps({"name": name, "config": config}, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file_table(folder: Path) -> dict[str, list]:
    return {
        str(p.relative_to(folder)): [p.stat().st_size, _sha256(p)]
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != _MANIFEST
    }


def _abstract(tree: Any) -> Any:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)


def _save(folder: Path, model: Model, history: History, config: Mapping[str, Any]) -> None:
    ckptr = ocp.StandardCheckpointer()
    try:
        ckptr.save(folder / "params", model.params)
        if model.has_batch_stats:  # trained running averages (BatchNorm): saved beside params
            ckptr.save(folder / "state", _stats(model.state))
        ckptr.wait_until_finished()
    finally:
        ckptr.close()
    atomic_write_text(folder / "history.json", json.dumps(history._asdict()))
    atomic_write_text(folder / "config.json", json.dumps(config, sort_keys=True, default=str))
    _commit(folder)


def _commit(folder: Path) -> None:
    atomic_write_text(folder / _MANIFEST, json.dumps(_file_table(folder), sort_keys=True))


def _load(folder: Path, like: Model) -> tuple[Model, History]:
    manifest = json.loads((folder / _MANIFEST).read_text())
    if manifest != _file_table(folder):
        raise ValueError("files do not match the manifest")
    ckptr = ocp.StandardCheckpointer()
    try:
        params = ckptr.restore((folder / "params").resolve(), _abstract(like.params))
        state = None
        if like.has_batch_stats:  # an entry without them predates their training: retrained
            if not (folder / "state").is_dir():
                raise ValueError("the entry holds no batch statistics")
            stats = ckptr.restore((folder / "state").resolve(), _abstract(_stats(like.state)))
            leaves, treedef = jax.tree.flatten(like.state)
            leaves = [stats.get(str(i), leaf) for i, leaf in enumerate(leaves)]
            state = jax.tree.unflatten(treedef, leaves)
    finally:
        ckptr.close()
    history = History(**json.loads((folder / "history.json").read_text()))
    return like.replace(params=params, state=state), history


def _stats(state: Any) -> dict[str, Any]:
    """The state's array leaves by position (RNG keys, which orbax cannot save, left out)."""
    return {
        str(i): leaf
        for i, leaf in enumerate(jax.tree.leaves(state))
        if not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
    }


def load_or_train(
    name: str,
    config: Mapping[str, Any],
    train_fn: Callable[[], tuple[Model, History]],
    *,
    like: Model,
    cache: str | os.PathLike | None = None,
) -> Trained:
    """Return the cached result for ``(name, config)``, or run ``train_fn`` and cache it.

    Args:
      name: the model's name (the entry folder's prefix).
      config: everything the result depends on (model settings, data, seed, training settings);
        JSON-serialisable. A different config is a different entry.
      train_fn: trains and returns ``(model, history)``; called only on a miss.
      like: a model with the same structure, into which cached parameters are loaded.
      cache: the cache folder (default :func:`cache_dir`).

    Returns:
      A :class:`Trained` with ``from_cache`` telling whether training was skipped.

    Raises:
      OSError: the entry must be written (a miss) and the cache folder is not writable (the
        message names it); raised before ``train_fn`` runs. A hit only reads.
    """
    final = _resolve(cache) / entry_name(name, config)
    if final.exists():
        try:
            model, history = _load(final, like)
            return Trained(model, history, True)
        except Exception as e:  # a corrupt or partial entry is discarded, never fatal
            warnings.warn(
                f"discarding corrupt visjax cache entry {final} ({type(e).__name__}: {e})",
                RuntimeWarning,
                stacklevel=2,
            )
            shutil.rmtree(final, ignore_errors=True)
    root = cache_dir(cache)  # a miss writes: check the folder before the training, not after
    _remove_stale_temps(root)
    model, history = train_fn()
    tmp = make_temp_dir(root, prefix=f"{_TMP_PREFIX}{final.name}-")
    try:
        _save(tmp, model, history, config)
        try:
            os.rename(tmp, final)
        except OSError:  # another writer committed the same entry first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Trained(model, history, False)
