"""The one model interface: NNX modules, Linen modules and plain functions as one pytree.

:func:`as_model` turns each supported form into a :class:`Model`: a pytree whose leaves are the
parameters (and any non-trainable state such as batch statistics), holding a pure forward function
whose layers are values named with ``jax.ad_checkpoint.checkpoint_name``. Every layer method of
visjax (activations, layer gradients, and later CAMs, LRP, feature visualisation) goes through
:meth:`Model.run`, which evaluates that program with :mod:`visjax.base.interpret`, so they work
the same on all three forms.

How layers get their names:

* NNX: after ``nnx.merge`` (inside the pure forward), each submodule of the private merged copy is
  switched to a cached subclass whose ``__call__`` tags its output with the submodule's path
  (``"blocks.0.attn"``). The user's classes and module are never modified.
* Linen: ``flax.linen.intercept_methods`` tags the output of every submodule's ``__call__`` with its
  path (``module.path`` joined by dots).
* Plain functions: the user tags values with ``checkpoint_name(h, "conv2")`` (re-exported as
  :func:`visjax.tag`), so model code needs no visjax import.

Only outputs that are a single array are tagged. A layer called ``k`` times is named ``path``
for its first call and ``path#1``, ... for later ones.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

from visjax.base import interpret
from visjax.base.checks import check_tree_like

# The path of the NNX/Linen submodule being traced, so that `tag` inside a module names values
# relative to it. Set only while the adapters trace a forward.
_SCOPE: contextvars.ContextVar[str] = contextvars.ContextVar("visjax_scope", default="")


def tag(x: Any, name: str) -> Any:
    """Name a value as a layer, so visjax can capture or perturb it by that path.

    Outside a module this is ``jax.ad_checkpoint.checkpoint_name(x, name)``. Inside an NNX or Linen
    submodule traced through :func:`as_model`, the name is relative to the submodule: in the
    module at ``"blocks.0.attn"``, ``tag(w, "weights")`` is the layer ``"blocks.0.attn.weights"``
    (a raw ``checkpoint_name`` there keeps its name as given).

    Example:
      >>> import jax.numpy as jnp
      >>> def apply(p, x):
      ...     return tag(x @ p, "fc")
      >>> as_model(apply, jnp.eye(2), input_shape=(2,)).layers
      ('fc',)
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string (the layer's name), got {name!r}")
    scope = _SCOPE.get()
    return checkpoint_name(x, f"{scope}.{name}" if scope else name)


ForwardFn = Callable[[Any, Any, jax.Array], Any]


# --------------------------------------------------------------------------- forward functions
# Each is hashable and compares equal for the same underlying model, so it can sit in a Model's
# static pytree data and two Models over the same architecture share compiled code.


def _call_in_scope(path: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """Call a submodule with `tag` scoped to its path, and name its output by the path."""
    token = _SCOPE.set(path)
    try:
        out = fn(*args, **kwargs)
    finally:
        _SCOPE.reset(token)
    return checkpoint_name(out, path) if isinstance(out, jax.Array) else out


@functools.cache
def _tagged_nnx_class(cls: type) -> type:
    def __call__(self, *args, **kwargs):
        return _call_in_scope(vars(self)["_visjax_path"], cls.__call__, self, *args, **kwargs)

    return type(cls)(cls.__name__, (cls,), {"__call__": __call__, "__module__": cls.__module__})


def _path_str(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path)


@dataclasses.dataclass(frozen=True)
class _NNXForward:
    graphdef: Any
    params_treedef: Any
    # Hashing a graphdef walks the whole module graph; every cached trace lookup hashes this.
    _hash: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_hash", hash((self.graphdef, self.params_treedef)))

    def __hash__(self):
        return self._hash

    def __call__(self, params, state, x):
        from flax import nnx  # noqa: PLC0415 - flax (~1.1 s), only for Flax models

        param_state = jax.tree.unflatten(self.params_treedef, jax.tree.leaves(params))
        module = nnx.merge(self.graphdef, param_state, state)
        for path, sub in nnx.iter_modules(module):
            if path and callable(sub):
                vars(sub)["_visjax_path"] = _path_str(path)
                sub.__class__ = _tagged_nnx_class(type(sub))
        return module(x)

    def train_mode(self, params, state, x):
        """The forward with ``use_running_average=False`` (batch statistics), untagged:
        ``(output, new state)``, the running averages updated by each module's momentum."""
        from flax import nnx  # noqa: PLC0415 - flax (~1.1 s), only for Flax models

        param_state = jax.tree.unflatten(self.params_treedef, jax.tree.leaves(params))
        # copy: the running averages are written, and `state`'s variables may come from an outer
        # trace (a jit around a grad)
        module = nnx.merge(self.graphdef, param_state, state, copy=True)
        module.set_attributes(use_running_average=False, raise_if_not_found=False)
        out = module(x)
        return out, nnx.split(module, nnx.Param, ...)[2]


def _linen_tagger(next_fun, args, kwargs, context):
    if context.method_name == "__call__" and context.module.path:
        return _call_in_scope(_path_str(context.module.path), next_fun, *args, **kwargs)
    return next_fun(*args, **kwargs)


@dataclasses.dataclass(frozen=True, eq=False)
class _LinenForward:
    module: Any
    apply_kwargs: tuple[tuple[str, Any], ...]

    def __eq__(self, other):
        return (
            isinstance(other, _LinenForward)
            and self.module is other.module
            and self.apply_kwargs == other.apply_kwargs
        )

    def __hash__(self):
        return hash((id(self.module), self.apply_kwargs))

    def __call__(self, params, state, x):
        import flax.linen as nn  # noqa: PLC0415 - flax (~1.1 s), only for Flax models

        with nn.intercept_methods(_linen_tagger):
            return self.module.apply({"params": params, **state}, x, **dict(self.apply_kwargs))


@dataclasses.dataclass(frozen=True)
class _PlainForward:
    fn: Callable[[Any, jax.Array], Any]

    def __call__(self, params, state, x):
        del state
        return self.fn(params, x)


@dataclasses.dataclass(frozen=True)
class _BoundForward:
    """The forward as a function of one leaf of its pytree input, the other leaves held fixed.

    The model's ``state`` is ``{"model": <the model's state>, "fixed": <the other leaves>}``, so
    new fixed values are new arguments, not new code. A fixed leaf with a leading axis of 1 is
    shared by every row of a call; one with ``N`` rows pairs with calls on exactly ``N`` rows.
    """

    forward: Any
    treedef: Any
    position: int

    def __call__(self, params, state, x):
        rows = x.shape[0]
        leaves = []
        for f in state["fixed"]:
            if f.shape[0] == 1 and rows != 1:
                f = jnp.broadcast_to(f, (rows, *f.shape[1:]))
            elif f.shape[0] != rows:
                raise ValueError(
                    f"the inputs held fixed (those not named by `wrt`) hold {f.shape[0]} "
                    f"examples but the model was called on {rows} rows: methods evaluate "
                    "examples one at a time, so fixed leaves must have a leading axis of 1 "
                    "(shared) or go through `visjax.model.per_example(method)`"
                )
            leaves.append(f)
        leaves.insert(self.position, x)
        return self.forward(params, state["model"], jax.tree.unflatten(self.treedef, leaves))


# --------------------------------------------------------------------------- tracing (cached)


def _aval_key(tree) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(np.shape(v)), jnp.result_type(v)) for v in leaves)


@functools.lru_cache(maxsize=128)
def _trace_cached(forward, key):
    specs = tuple(
        jax.tree.unflatten(tree, [jax.ShapeDtypeStruct(s, d) for s, d in leaves])
        for tree, leaves in key
    )
    closed, out_shape = jax.make_jaxpr(forward, return_shape=True)(*specs)
    return closed, jax.tree.structure(out_shape), tuple(interpret.names_in(closed))


@functools.lru_cache(maxsize=128)
def _scan_lengths_cached(forward, key):
    return interpret.scan_lengths(_trace_cached(forward, key)[0])


def _scan_lengths(forward, params, state, x) -> dict[str, tuple[int, ...]]:
    """Layers inside ``scan`` and the lengths of their enclosing scans (see :meth:`Model.run`)."""
    return _scan_lengths_cached(forward, (_aval_key(params), _aval_key(state), _aval_key(x)))


_LAYER_SHAPES: dict = {}  # (forward, aval keys) -> {layer: ShapeDtypeStruct}, oldest first
_LAYER_SHAPES_SIZE = 128


def _trace(forward, params, state, x):
    """The forward's jaxpr, output tree and layer names for these argument shapes (no compile).

    ``x`` is an array or, for a model with ``wrt``, the pytree input."""
    key = (_aval_key(params), _aval_key(state), _aval_key(x))
    return _trace_cached(forward, key)


class Trace(NamedTuple):
    """What :meth:`Model.trace` returns: the forward's closed jaxpr (arguments: the params
    leaves, the state leaves, ``x``), the output's tree structure and the layer names in the order
    the forward reaches them."""

    jaxpr: Any
    out_tree: Any
    layers: tuple[str, ...]


# --------------------------------------------------------------------------- the model


@jax.tree_util.register_pytree_node_class
class Model:
    """A model as a pure function of its parameters; build one with :func:`as_model`.

    A ``Model`` is a pytree: its leaves are ``params`` (the trainable parameters, a nested dict)
    and ``state`` (non-trainable variables such as batch statistics), so
    ``jax.jit(f)(model, x)`` passes the weights as arguments and new weights do not recompile.
    Everything else (the forward function, the expected input) is static.

    Attributes:
      params: the trainable parameters, a pytree (nested dict of arrays).
      state: non-trainable variables the forward reads (batch statistics), a pytree.
      kind: ``"nnx"``, ``"linen"`` or ``"function"``.
      input_shape: one example's shape, or ``None`` when unknown; ``None`` entries match any size
        (with ``wrt``: the shape of that leaf).
      wrt: for a model whose input is a pytree (a dict or tuple), the dict key or tuple index of
        the leaf that attribution targets; ``None`` for a model of one array. Such a model runs,
        captures and perturbs on the whole pytree; :meth:`bind` makes it a function of that leaf.
    """

    def __init__(
        self,
        forward: ForwardFn,
        params: Any,
        state: Any,
        *,
        kind: str,
        input_shape: tuple[int | None, ...] | None,
        input_dtype: Any,
        declared_layers: tuple[str, ...] | None,
        wrt: str | int | None = None,
    ):
        self.forward = forward
        self.wrt = wrt
        self.params = params
        self.state = state
        self.kind = kind
        self.input_shape = input_shape
        self.input_dtype = input_dtype
        self._declared_layers = declared_layers

    # pytree protocol
    def tree_flatten(self):
        aux = (
            self.forward,
            self.kind,
            self.input_shape,
            self.input_dtype,
            self._declared_layers,
            self.wrt,
        )
        return (self.params, self.state), aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        forward, kind, input_shape, input_dtype, declared, wrt = aux
        obj = object.__new__(cls)
        obj.forward, obj.kind, obj.input_shape, obj.wrt = forward, kind, input_shape, wrt
        obj.input_dtype, obj._declared_layers = input_dtype, declared
        obj.params, obj.state = children
        return obj

    def __repr__(self) -> str:
        n = sum(int(np.prod(np.shape(p))) for p in jax.tree.leaves(self.params))
        return f"Model(kind={self.kind!r}, params={n:,}, input_shape={self.input_shape})"

    def replace(self, *, params: Any = None, state: Any = None) -> Model:
        """A copy with new ``params`` and/or ``state`` (checked against the current trees)."""
        if params is not None:
            self.check_params(params)
        if state is not None:
            check_tree_like(state, self.state, "state")
        return Model(
            self.forward,
            self.params if params is None else params,
            self.state if state is None else state,
            kind=self.kind,
            input_shape=self.input_shape,
            input_dtype=self.input_dtype,
            declared_layers=self._declared_layers,
            wrt=self.wrt,
        )

    @property
    def has_batch_stats(self) -> bool:
        """Whether :attr:`state` holds batch statistics (``nnx.BatchStat`` variables of an NNX
        model, or a ``"batch_stats"`` collection of a Linen model)."""
        if self.kind == "linen":
            return bool(jax.tree.leaves(self.state.get("batch_stats", {})))
        if self.kind != "nnx":
            return False
        from flax import nnx  # noqa: PLC0415 - flax (~1.1 s), only for Flax models

        leaves = jax.tree.leaves(self.state, is_leaf=lambda v: isinstance(v, nnx.Variable))
        return any(isinstance(v, nnx.BatchStat) for v in leaves)

    def apply_train(self, params: Any, state: Any, x: Any) -> tuple[Any, Any]:
        """The forward in training mode: ``(output, new_state)``.

        NNX models only (Linen has no generic switch): every module with a
        ``use_running_average`` flag (``nnx.BatchNorm``) normalises with the statistics of the
        batch ``x`` and updates its running averages by its own ``momentum``; the other inference
        flags (dropout's ``deterministic``) stay as :func:`as_model` set them. ``new_state`` has
        the tree of :attr:`state`. Layers are not tagged (this is for training, not capture).
        """
        train_mode = getattr(self.forward, "train_mode", None)
        if train_mode is None:
            raise TypeError(
                f"training mode needs an NNX model without `wrt`, got a {self.kind!r} model"
            )
        return train_mode(params, state, self.check_x(x))

    # -- checks (trace time: shapes and dtypes only)
    def check_params(self, params: Any) -> None:
        """Raise ``ValueError`` unless ``params`` has the tree and leaf shapes of the model's, and
        ``TypeError`` (naming the leaf's path) if a leaf that is floating in the model's is not."""
        check_tree_like(params, self.params, "params")
        leaves = jax.tree_util.tree_leaves_with_path(params)
        for (path, a), ref in zip(leaves, jax.tree.leaves(self.params), strict=True):
            if jnp.issubdtype(jnp.result_type(ref), jnp.floating) and not jnp.issubdtype(
                jnp.result_type(a), jnp.floating
            ):
                raise TypeError(
                    f"`params{jax.tree_util.keystr(path)}` must have a floating dtype, got "
                    f"{jnp.result_type(a)}"
                )

    def check_x(self, x: Any) -> Any:
        """``x`` as an array, checked against the model's input (rank, shape, dtype): raises
        ``TypeError``/``ValueError`` naming ``x``. Shapes and dtypes only, so it works under jit.

        For a model with ``wrt``, ``x`` is the pytree input: the ``wrt`` leaf is checked as above,
        every leaf must have the same leading (example) axis, and the pytree is returned.
        """
        # A dict, or a tuple/list holding arrays, is a pytree input; nested lists of numbers
        # are an array.
        pytree = isinstance(x, Mapping) or (
            isinstance(x, tuple | list) and any(hasattr(a, "shape") for a in x)
        )
        if pytree or (self.wrt is not None and isinstance(x, tuple | list)):
            if self.wrt is None:
                raise TypeError(
                    f"`x` is a pytree ({type(x).__name__}), but this method needs one array: pass "
                    "`wrt=` to `visjax.as_model` naming the leaf to attribute (a dict key or a "
                    "tuple index); the other leaves are then held fixed"
                )
            return self._check_inputs(x)
        if self.wrt is not None:
            raise TypeError(
                f"`x` must be the model's pytree input (a dict or tuple holding the `wrt` leaf "
                f"{self.wrt!r}), got {type(x).__name__}"
            )
        return self._check_array(x)

    def _wrt_position(self, x: Any) -> tuple[int, Any, list]:
        """``(position, treedef, leaves)`` of the ``wrt`` leaf in ``x``'s flattened leaves."""
        with_path, treedef = jax.tree_util.tree_flatten_with_path(x)
        keys = list(x.keys()) if isinstance(x, Mapping) else list(range(len(x)))
        if self.wrt not in keys:
            raise ValueError(f"`wrt` names {self.wrt!r}, which `x` does not hold; it holds {keys}")
        hits = [i for i, (path, _) in enumerate(with_path) if _key_of(path[0]) == self.wrt]
        if len(hits) != 1 or len(with_path[hits[0]][0]) != 1:
            raise ValueError(f"`x[{self.wrt!r}]` (the `wrt` leaf) must be one array, not a pytree")
        return hits[0], treedef, [leaf for _, leaf in with_path]

    def _check_inputs(self, x: Any) -> Any:
        position, treedef, leaves = self._wrt_position(x)
        arrays = []
        for i, leaf in enumerate(leaves):
            if i == position:
                arrays.append(self._check_array(leaf))
                continue
            if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
                leaf = jnp.asarray(leaf)
            arrays.append(leaf)
        n = arrays[position].shape[0]
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(x)[0]]
        for i, (path, a) in enumerate(zip(paths, arrays, strict=True)):
            if a.ndim < 1 or a.shape[0] not in (n, 1 if i != position else n):
                raise ValueError(
                    f"`x{path}` must have the batch's leading axis of {n} (that of `x` at "
                    f"`wrt`; 1 for a fixed leaf shared by every example), got shape "
                    f"{tuple(a.shape)}"
                )
        return jax.tree.unflatten(treedef, arrays)

    def bind(self, x: Any) -> tuple[Model, Any]:
        """``(model, leaf)``: this model as a function of the ``wrt`` leaf of the pytree ``x``,
        the other leaves held fixed, and that leaf (checked). Without ``wrt``: ``(self, x)``
        checked.

        The bound model pairs the fixed leaves with the rows of every call, so it serves methods
        that call the model on the whole batch; a fixed leaf with a leading axis of 1 is shared by
        every row and serves all of them (attribution methods evaluate examples one at a time:
        for per-example fixed leaves use :func:`per_example`). The fixed leaves are pytree leaves
        of the bound model, so binding new values does not recompile a jitted method.
        """
        x = self.check_x(x)
        if self.wrt is None:
            return self, x
        position, treedef, leaves = self._wrt_position(x)
        leaf = leaves.pop(position)
        bound = Model(
            _BoundForward(self.forward, treedef, position),
            self.params,
            {"model": self.state, "fixed": tuple(leaves)},
            kind=self.kind,
            input_shape=self.input_shape,
            input_dtype=self.input_dtype,
            declared_layers=self._declared_layers,
        )
        return bound, leaf

    def _check_array(self, x: Any) -> jax.Array:
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            try:
                x = jnp.asarray(x)
            except (TypeError, ValueError) as e:
                raise TypeError(f"`x` must be an array, got {type(x).__name__}") from e
        dtype = jnp.result_type(x)
        want = self.input_dtype
        if want is None:
            if not jnp.issubdtype(dtype, jnp.floating):
                raise TypeError(
                    f"`x` must have a floating dtype, got {dtype} (pass `input_dtype=` to "
                    "`as_model` for models that take integer inputs)"
                )
        elif not jnp.issubdtype(dtype, want):
            raise TypeError(f"`x` must have dtype {np.dtype(want).name}, got {dtype}")
        if self.input_shape is not None:
            want_shape = self.input_shape
            ok = x.ndim == len(want_shape) + 1 and all(
                w is None or w == s for w, s in zip(want_shape, x.shape[1:], strict=False)
            )
            if not ok:
                raise ValueError(
                    f"`x` must be a batch of shape (N, {', '.join(map(str, want_shape))}) "
                    f"(rank {len(want_shape) + 1}), got shape {tuple(x.shape)}"
                )
        elif x.ndim < 1:
            raise ValueError(f"`x` must be a batch with a leading example axis, got {x.shape}")
        return x

    def trace(self, x: Any) -> Trace:
        """The forward's jaxpr, output tree and layer names for a batch shaped like ``x``.

        ``x`` is an array or a :class:`jax.ShapeDtypeStruct`; only its shape and dtype matter, and
        nothing compiles. Cached per forward and argument shapes, so asking again is cheap.
        """
        return Trace(*_trace(self.forward, self.params, self.state, x))

    def output_shape(self, x: Any) -> Any:
        """The output for a batch shaped like ``x`` as :class:`jax.ShapeDtypeStruct` leaves, from
        the cached :meth:`trace` (nothing is evaluated)."""
        closed, out_tree, _ = _trace(self.forward, self.params, self.state, x)
        avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in closed.out_avals]
        return jax.tree.unflatten(out_tree, avals)

    # -- the forward
    def apply(self, params: Any, x: Any) -> Any:
        """The output for the batch ``x`` at ``params`` (a tree like ``self.params``)."""
        self.check_params(params)
        return self.forward(params, self.state, self.check_x(x))

    @property
    def apply_fn(self) -> Callable[[Any, Any], Any]:
        """``(params, x) -> output`` as a hashable function: equal for models that share their
        forward and state, so it can be a static argument of ``jit`` (losses built on it do not
        recompile for new weights)."""
        return _ApplyFn(self)

    def __call__(self, x: Any) -> Any:
        """The output for the batch ``x`` (shape ``(N, *input_shape)``; the pytree input for a
        model with ``wrt``)."""
        return self.forward(self.params, self.state, self.check_x(x))

    @property
    def layers(self) -> tuple[str, ...]:
        """The layer paths, in the order the forward first reaches them.

        Found by one abstract trace (nothing compiles) when ``input_shape`` is known; otherwise
        the NNX submodule paths or the Linen variable paths. A plain function's layers can only
        be listed by tracing, so it needs ``input_shape``.
        """
        if self.wrt is None and self.input_shape is not None and None not in self.input_shape:
            x = jax.ShapeDtypeStruct((1, *self.input_shape), self.input_dtype or jnp.float32)
            return _trace(self.forward, self.params, self.state, x)[2]
        if self._declared_layers is not None:
            return self._declared_layers
        if self.wrt is not None:
            raise ValueError(
                "listing the layers of a plain function with a pytree input needs an example: "
                "use `model.trace(x).layers`"
            )
        raise ValueError(
            "listing the layers of a plain function needs one example's shape: pass "
            "`input_shape=` to `visjax.as_model`"
        )

    def scan_lengths(self, x: Any) -> dict[str, tuple[int, ...]]:
        """The layers inside ``scan`` for a batch shaped like ``x``, each with the lengths of its
        enclosing scans (outermost first): the leading axes its captured value is stacked on.
        Layers outside any scan are absent. From the cached trace; nothing compiles."""
        x = self.check_x(x)
        return dict(_scan_lengths(self.forward, self.params, self.state, x))

    def layer_shapes(self, x: Any) -> dict[str, jax.ShapeDtypeStruct]:
        """Shape and dtype of every layer's activation for the batch ``x`` (nothing compiles).

        A layer inside ``scan`` has its stacked shape ``(L, N, ...)``; the dict also answers
        ``"path[i]"`` (one iteration, ``(N, ...)``) in ``in`` and ``[]``, but does not list it.
        """
        x = self.check_x(x)
        # Cached like the trace: attribution methods ask on every call, and an abstract
        # evaluation costs about a millisecond of Python.
        key = (self.forward, _aval_key(self.params), _aval_key(self.state), _aval_key(x))
        shapes = _LAYER_SHAPES.get(key)
        if shapes is None:
            names = _trace(self.forward, self.params, self.state, x)[2]
            spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)), x)
            shapes = jax.eval_shape(lambda m, x: m.run(x, capture=names)[1], self, spec)
            if len(_LAYER_SHAPES) >= _LAYER_SHAPES_SIZE:
                _LAYER_SHAPES.pop(next(iter(_LAYER_SHAPES)))
            _LAYER_SHAPES[key] = shapes
        loops = _scan_lengths(self.forward, self.params, self.state, x)
        return _LayerShapes(shapes, loops) if loops else dict(shapes)

    def run(
        self,
        x: Any,
        *,
        capture: Sequence[str] = (),
        perturb: Mapping[str, Any] | None = None,
        replace: Mapping[str, Any] | None = None,
        params: Any = None,
    ) -> tuple[Any, dict[str, jax.Array]]:
        """Run the forward, capturing, perturbing and/or replacing named layers.

        ``perturb[name]`` is added to that layer's activation (same shape, batch first) before the
        rest of the network sees it, so ``jax.grad`` with respect to a zero perturbation is the
        gradient with respect to the layer. Captured activations are taken after the
        perturbation.

        Args:
          x: a batch ``(N, *input_shape)``.
          capture: layer paths whose activations to return.
          perturb: layer path to an array added to its activation.
          replace: layer path to an array used instead of its activation (the layers before it
            still run; the gradient with respect to the replacement is the layer gradient, and
            nothing flows to the layers before it through this path).
          params: parameters to use instead of ``self.params``.

        Returns:
          ``(output, activations)`` with ``activations[name]`` of shape ``(N, ...)``.

        Raises:
          ValueError: an unknown layer path (the message lists the known ones), checked when
            tracing, before anything compiles.
        """
        params = self.params if params is None else params
        self.check_params(params)
        x = self.check_x(x)
        perturb = dict(perturb or {})
        replace = dict(replace or {})
        capture = (capture,) if isinstance(capture, str) else tuple(capture)
        closed, out_tree, known = _trace(self.forward, params, self.state, x)
        loops = _scan_lengths(self.forward, params, self.state, x)
        for arg, names in (
            ("capture", capture),
            ("perturb", tuple(perturb)),
            ("replace", tuple(replace)),
        ):
            for n in names:
                _check_name(arg, n, known, loops)
        if not capture and not perturb and not replace:
            return self.forward(params, self.state, x), {}
        captured: dict[str, jax.Array] = {}
        # key -> [(argument, iteration index or None, value)], replacements first.
        plans: dict[str, list] = {}
        for arg, table in (("replace", replace), ("perturb", perturb)):
            for name, new in table.items():
                key, index = _split_index(name)
                plans.setdefault(key, []).append((arg, name, index, new))

        def on_name(key: str, value: jax.Array) -> jax.Array:
            for arg, name, _, new in plans.get(key, ()):
                new = _checked(arg, name, new, value.shape, value.dtype)
                value = new if arg == "replace" else value + new
            if key in capture:
                captured[key] = value
            return value

        def on_loop_name(key: str, value: jax.Array, loop: tuple) -> jax.Array:
            # Inside `scan`: a plain path's table entry holds the stacked values (one leading
            # axis per enclosing scan), of which this iteration reads its slice; `path[i]` holds
            # one iteration's value, used at that iteration only.
            lengths = tuple(n for _, n in loop)
            for arg, name, index, new in plans.get(key, ()):
                if index is None:
                    new = _checked(arg, name, new, (*lengths, *value.shape), value.dtype)
                    for i, _ in loop:
                        new = new[i]
                    changed = new if arg == "replace" else value + new
                else:
                    new = _checked(arg, name, new, value.shape, value.dtype)
                    here = functools.reduce(
                        jnp.logical_and, [i == k for (i, _), k in zip(loop, index, strict=True)]
                    )
                    changed = jnp.where(here, new if arg == "replace" else value + new, value)
                value = changed
            return value

        base_names = {_split_index(n)[0].split("#")[0] for n in (*capture, *perturb, *replace)}
        flat = jax.tree.leaves((params, self.state, x))
        stacked: dict[str, jax.Array] = {}
        outs = interpret.eval_jaxpr(
            closed,
            flat,
            names=base_names,
            on_name=on_name,
            on_loop_name=on_loop_name,
            loop_values=stacked,
        )
        captured.update(stacked)
        result = {}
        for n in capture:
            key, index = _split_index(n)
            result[n] = captured[key] if index is None else captured[key][index]
        return jax.tree.unflatten(out_tree, outs), result

    def activations(
        self, x: Any, layers: str | Sequence[str], *, params: Any = None
    ) -> tuple[Any, dict[str, jax.Array]]:
        """The output and the activations of ``layers`` for the batch ``x``."""
        layers = (layers,) if isinstance(layers, str) else tuple(layers)
        return self.run(x, capture=layers, params=params)

    def perturbed(self, x: Any, deltas: Mapping[str, Any], *, params: Any = None) -> Any:
        """The output with ``deltas[name]`` added to the activation of each named layer."""
        return self.run(x, perturb=deltas, params=params)[0]


_INDEX = re.compile(r"^(.*?)((?:\[\d+\])+)$")


def _split_index(name: str) -> tuple[str, tuple[int, ...] | None]:
    """``"blocks.fc[2]"`` -> ``("blocks.fc", (2,))``; a name without ``[i]`` -> ``(name, None)``."""
    m = _INDEX.match(name)
    if m is None:
        return name, None
    return m.group(1), tuple(int(i) for i in re.findall(r"\d+", m.group(2)))


def _check_name(arg: str, name: str, known: Sequence[str], loops: Mapping[str, tuple]) -> None:
    key, index = _split_index(name)
    if key not in known:
        raise ValueError(f"`{arg}` names unknown layer(s) {[name]}; known layers: {list(known)}")
    if index is None:
        return
    lengths = loops.get(key)
    if lengths is None:
        raise ValueError(
            f"`{arg}` names {name!r}, but {key!r} is not inside a `scan`: `[i]` picks one "
            "iteration of a layer inside a scan"
        )
    if len(index) != len(lengths) or any(
        not 0 <= i < n for i, n in zip(index, lengths, strict=True)
    ):
        raise ValueError(
            f"`{arg}` names {name!r}: {key!r} runs inside scans of lengths {list(lengths)}, so "
            f"it takes {len(lengths)} index(es) `[i]` with 0 <= i < length"
        )


class _LayerShapes(dict):
    """Layer shapes that also answer ``"path[i]"`` for a layer inside ``scan`` (not listed)."""

    def __init__(self, shapes: Mapping[str, Any], loops: Mapping[str, tuple[int, ...]]):
        super().__init__(shapes)
        self._loops = loops

    def _iteration(self, name: Any) -> Any:
        if not isinstance(name, str):
            return None
        key, index = _split_index(name)
        lengths = self._loops.get(key)
        if index is None or lengths is None or len(index) != len(lengths):
            return None
        if not all(0 <= i < n for i, n in zip(index, lengths, strict=True)):
            return None
        full = dict.__getitem__(self, key)
        return jax.ShapeDtypeStruct(full.shape[len(index) :], full.dtype)

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or self._iteration(name) is not None

    def __getitem__(self, name: str) -> Any:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        shape = self._iteration(name)
        if shape is None:
            raise KeyError(name)
        return shape

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default


def _checked(arg: str, name: str, new: Any, shape: tuple, dtype: Any) -> jax.Array:
    new = jnp.asarray(new)
    if new.shape != tuple(shape):
        raise ValueError(
            f"`{arg}[{name!r}]` must have the layer's shape {tuple(shape)}, got {new.shape}"
        )
    return new.astype(dtype)


class _ApplyFn:
    def __init__(self, model: Model):
        self.model = model

    def __call__(self, params: Any, x: Any) -> Any:
        return self.model.apply(params, x)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _ApplyFn) and (
            self.model.forward == other.model.forward and self.model.state is other.model.state
        )

    def __hash__(self) -> int:
        return hash((_ApplyFn, self.model.forward, id(self.model.state)))


# --------------------------------------------------------------------------- adapters


def as_model(
    obj: Any,
    params: Any = None,
    *,
    input_shape: Sequence[int | None] | None = None,
    input_dtype: Any = None,
    apply_kwargs: Mapping[str, Any] | None = None,
    wrt: str | int | None = None,
) -> Model:
    """Adapt a Flax NNX module, a Linen module with its variables, or a plain function.

    * ``as_model(nnx_module)``: the module is viewed in inference mode
      (``deterministic=True, use_running_average=True``) and split into parameters (``nnx.Param``,
      as a nested dict) and the rest (batch statistics, RNG state). The module is not modified.
    * ``as_model(linen_module, variables)``: ``variables["params"]`` become the parameters, the
      other collections the state; ``apply_kwargs`` carries the module's own inference flags
      (``{"train": False}``), since Linen has no generic switch.
    * ``as_model(apply, params)``: ``apply(params, x) -> output`` for a batch ``x``; layers are the
      values it names with ``checkpoint_name`` (:func:`visjax.tag`).
    * ``as_model(model)``: a :class:`Model` is returned as is.

    Args:
      obj: the model.
      params: Linen variables or the plain function's parameters; ``None`` for NNX.
      input_shape: one example's shape (no batch axis); entries may be ``None`` for any size.
        Needed to list the layers of plain functions; inputs are checked against it.
      input_dtype: the dtype kind inputs must have (default: any floating dtype).
      apply_kwargs: keyword arguments for a Linen module's ``apply`` (inference flags).
      wrt: for a model whose input is a pytree (a dict of tokens and mask, a tuple): the dict key
        or tuple index of the leaf attribution targets; the other leaves are held fixed.
        ``input_shape`` and ``input_dtype`` then describe that leaf. Attribution methods take the
        pytree as ``x`` (see :meth:`Model.bind` and :func:`per_example`).

    Returns:
      A :class:`Model`.

    Raises:
      TypeError: ``obj`` is none of the supported forms, or ``params`` are missing or misplaced.
    """
    if isinstance(obj, Model):
        if wrt is not None and wrt != obj.wrt:
            raise TypeError("`wrt` cannot change a Model's input: pass it when building the Model")
        return obj
    shape = None if input_shape is None else tuple(input_shape)
    if shape is not None and not all(d is None or (isinstance(d, int) and d > 0) for d in shape):
        raise ValueError(f"`input_shape` must hold positive ints or None, got {input_shape!r}")
    if wrt is not None and (isinstance(wrt, bool) or not isinstance(wrt, str | int)):
        raise TypeError(f"`wrt` must be a dict key (str) or a tuple index (int), got {wrt!r}")
    common = dict(input_shape=shape, input_dtype=input_dtype, wrt=wrt)

    import flax.linen as nn  # noqa: PLC0415 - flax (~1.1 s), only for Flax models
    from flax import nnx  # noqa: PLC0415 - flax (~1.1 s), only for Flax models

    if isinstance(obj, nnx.Module):
        if params is not None:
            raise TypeError("`params` must be None for an NNX module (its state is inside it)")
        if apply_kwargs:
            raise TypeError("`apply_kwargs` applies to Linen modules only")
        view = nnx.view(obj, deterministic=True, use_running_average=True, raise_if_not_found=False)
        graphdef, param_state, rest = nnx.split(view, nnx.Param, ...)
        pure = nnx.to_pure_dict(param_state)
        declared = tuple(
            _path_str(path) for path, sub in nnx.iter_modules(view) if path and callable(sub)
        )
        forward = _NNXForward(graphdef, jax.tree.structure(param_state))
        return Model(forward, pure, rest, kind="nnx", declared_layers=declared, **common)

    if isinstance(obj, nn.Module):
        if not isinstance(params, Mapping) or "params" not in params:
            raise TypeError(
                "`params` must be the Linen module's variables, a dict with a 'params' "
                f"collection (as returned by `module.init`), got {type(params).__name__}"
            )
        variables = dict(params)
        linen_params = variables.pop("params")
        declared = tuple(_dict_paths(linen_params))
        kwargs = tuple(sorted((apply_kwargs or {}).items()))
        return Model(
            _LinenForward(obj, kwargs),
            linen_params,
            variables,
            kind="linen",
            declared_layers=declared,
            **common,
        )

    if callable(obj) and not isinstance(obj, type):
        if apply_kwargs:
            raise TypeError("`apply_kwargs` applies to Linen modules only")
        if params is None:
            raise TypeError("a plain function needs its parameters: `as_model(apply, params)`")
        return Model(
            _PlainForward(obj), params, {}, kind="function", declared_layers=None, **common
        )

    raise TypeError(
        "`obj` must be a flax NNX module, a Linen module (with its variables as `params`), "
        f"a function `apply(params, x)` or a visjax Model, got {type(obj).__name__}"
    )


def _key_of(entry: Any) -> Any:
    """The dict key or sequence index of one key-path entry."""
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return entry


def per_example(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` run on a model with ``wrt`` one example at a time, each with its own fixed leaves.

    ``per_example(method)(model, x, *args, **kwargs)`` with ``x`` the pytree input (leading axis
    ``N`` on every leaf) equals, for each example ``i``, ``method(bound_i, leaf_i, *args_i,
    **kwargs)`` where ``bound_i, leaf_i = model.bind(x[i:i+1])`` and ``args_i`` takes row ``i`` of
    every positional argument with a leading axis of ``N`` (a per-example ``target``); it is one
    ``jax.vmap`` over the examples, so the method compiles once. Keyword arguments are passed as
    they are (static options, a shared ``key``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> def apply(p, x):
      ...     return (x["a"] * x["mask"]) @ p
      >>> m = as_model(apply, jnp.ones((3, 2)), wrt="a", input_shape=(3,))
      >>> x = {"a": jnp.ones((2, 3)), "mask": jnp.array([[1.0, 1, 0], [1, 0, 0]])}
      >>> g = per_example(lambda m, a, t: jax.vmap(jax.grad(lambda r: m(r[None])[0, t]))(a))
      >>> g(m, x, 0).tolist()
      [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """

    @functools.wraps(method)
    def run(model: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        model = as_model(model)
        if model.wrt is None:
            raise TypeError("`per_example` needs a model built with `wrt=` (a pytree input)")
        x = model.check_x(x)
        n = jax.tree.leaves(x)[0].shape[0]
        mapped = [np.ndim(a) >= 1 and np.shape(a)[0] == n for a in args]

        def one(xi, margs):
            it = iter(margs)
            full = [next(it)[None] if m else a for a, m in zip(args, mapped, strict=True)]
            bound, leaf = model.bind(jax.tree.map(lambda a: a[None], xi))
            return jax.tree.map(lambda r: r[0], method(bound, leaf, *full, **kwargs))

        return jax.vmap(one)(x, [a for a, m in zip(args, mapped, strict=True) if m])

    return run


def _dict_paths(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    out = []
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.append(_path_str((*prefix, k)))
            out.extend(_dict_paths(v, (*prefix, k)))
    return out
