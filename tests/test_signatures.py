"""The signature convention, checked over every public function of visjax and its subpackages.

The convention (README, architecture section):

- attribution methods: ``method(model, x, target, *, ...)``;
- parameter-space tools: ``f(loss_fn, params, *operands, data, batch_size, key, devices)``, every
  argument after the operands keyword-only, ``data=`` always a loss batch;
- model inputs are always ``x``; ``n_steps``, ``n_samples``, ``stdev``, ``layer``/``layers``,
  ``batch_size``, ``devices``, ``data`` keyword-only; solvers under ``algorithm=``; ``method``
  only an attribution callable; ``key`` keyword-only, and required where randomness is always
  drawn;
- plots take ``ax=None`` (one axes) or ``fig=None`` (several panels) keyword-only; no public
  ``draw_*`` twins.

A name listed in an exemption below says why it keeps its spelling; the rule itself is the same for
every function.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import visjax

KW = inspect.Parameter.KEYWORD_ONLY

FORBIDDEN = {
    "abs": "shadows a builtin: `absolute=`",
    "steps": "a count is `n_steps=`",
    "batch": "a loss batch is `data=`",
    "solver": "a solver is chosen with `algorithm=`",
}
KEYWORD_ONLY = ("n_steps", "n_samples", "stdev", "layer", "layers", "batch_size", "devices", "data")
NOT_MODEL_INPUTS = ("data", "image", "images", "inputs", "batch")  # after `model`: it is `x`

# `method` is an attribution callable only in these.
METHOD_CALLABLE = {
    "visjax.attribution.at_layer",
    "visjax.attribution.cam.multi_layer",
    "visjax.attribution.metrics.data_randomisation",
    "visjax.attribution.metrics.model_randomisation",
    "visjax.attribution.metrics.sensitivity_max",
    "visjax.attribution.noise_tunnel",
}

# Randomness is always drawn: `key` has no default.
KEY_REQUIRED = {
    "visjax.attribution.expected_gradients",
    "visjax.attribution.kernel_shap",
    "visjax.attribution.lime",
    "visjax.attribution.metrics.data_randomisation",
    "visjax.attribution.metrics.model_randomisation",
    "visjax.attribution.shapley_value_sampling",
    "visjax.curvature.block_curvature",
    "visjax.curvature.hessian_diag",
    "visjax.curvature.spectral_density",
    "visjax.curvature.top_eigenvalues",
    "visjax.curvature.trace",
    "visjax.featviz.deepdream",
    "visjax.featviz.render",
    "visjax.landscape.random_direction",
    "visjax.landscape.random_plane",
}

_OBJECTIVE = "a featviz objective's own subject (Lucid's `channel('mixed4a', 476, batch=0)`)"
_IMAGE_INDEX = "the image of a parameterisation batch, not a loss batch (Lucid's spelling)"
_STEP_AXIS = "an array of training-step numbers (the x axis), not a count"
EXEMPT = {
    # (function, parameter): why the rule does not apply to it
    ("visjax.attribution.at_layer", "layer"): "composition `at_layer(method, layer)` (issue 25)",
    ("visjax.attribution.cam.multi_layer", "layers"): "composition, as `at_layer(method, layer)`",
    ("visjax.featviz.channel", "layer"): _OBJECTIVE,
    ("visjax.featviz.channel", "batch"): _IMAGE_INDEX,
    ("visjax.featviz.class_logit", "batch"): _IMAGE_INDEX,
    ("visjax.featviz.direction", "layer"): _OBJECTIVE,
    ("visjax.featviz.direction", "batch"): _IMAGE_INDEX,
    ("visjax.featviz.diversity", "layer"): _OBJECTIVE,
    ("visjax.featviz.layer", "layer"): _OBJECTIVE,
    ("visjax.featviz.layer", "batch"): _IMAGE_INDEX,
    ("visjax.featviz.neuron", "layer"): _OBJECTIVE,
    ("visjax.featviz.neuron", "batch"): _IMAGE_INDEX,
    ("visjax.featviz.fourier", "batch"): "the number of images per unit (`Param.batch`)",
    ("visjax.featviz.pixel", "batch"): "the number of images per unit (`Param.batch`)",
    ("visjax.plot.eigenvalues_over_training", "steps"): _STEP_AXIS,
    ("visjax.plot.loss_accuracy", "steps"): _STEP_AXIS,
    ("visjax.plot.noise_scale", "steps"): _STEP_AXIS,
    ("visjax.plot.attention_html", "ax"): "writes a self-contained HTML file, not a figure",
    ("visjax.zoo.init_digits_cnn_params", "key"): "a Flax-style initialiser: the key is its input",
    ("visjax.attention.tagged_attention", "key"): "Flax's attention_fn: `key` is the key array",
    ("visjax.zoo.evaluate", "data"): "a dataset split (x and labels) to score, the operand",
    ("visjax.embed.export_projector", "data"): "the vectors written to the projector, the operand",
    ("visjax.embed.tsne", "method"): "openTSNE's/scikit-learn's name for the gradient's algorithm",
}


def _packages() -> list[str]:
    names = ["visjax"]
    for m in pkgutil.walk_packages(visjax.__path__, "visjax."):
        if m.ispkg:
            names.append(m.name)
    return names


def _public_functions() -> dict[str, object]:
    """``"package.name" -> function``: every callable but a class in a package's ``__all__``."""
    found: dict[str, object] = {}
    seen: set[int] = set()
    for pkg in _packages():
        mod = importlib.import_module(pkg)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.isclass(obj) or not callable(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            found[f"{pkg}.{name}"] = obj
    return found


FUNCTIONS = _public_functions()


def _problems(qualname: str, fn) -> list[str]:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    names = [p.name for p in params]
    pkg, _, short = qualname.rpartition(".")
    out = []

    def exempt(param: str) -> bool:
        return (qualname, param) in EXEMPT

    if short.startswith("draw_"):
        out.append("a public `draw_*` twin: make it private")
    for p in params:
        if p.name.startswith("_"):
            out.append(f"`{p.name}`: a private parameter in a public signature")
        if p.name in FORBIDDEN and not exempt(p.name):
            out.append(f"`{p.name}`: {FORBIDDEN[p.name]}")
        if p.name in KEYWORD_ONLY and p.kind is not KW and not exempt(p.name):
            out.append(f"`{p.name}` must be keyword-only")
    if "method" in names and qualname not in METHOD_CALLABLE and not exempt("method"):
        out.append(
            "`method` is only an attribution callable (a rule is `rule=`, a solver `algorithm=`)"
        )
    if "key" in names and not exempt("key"):
        key = sig.parameters["key"]
        if key.kind is not KW:
            out.append("`key` must be keyword-only")
        if qualname in KEY_REQUIRED and key.default is not inspect.Parameter.empty:
            out.append("`key` must be required: randomness is always drawn")
    if names[:1] == ["loss_fn"]:
        data = sig.parameters.get("data")
        if data is None or data.kind is not KW:
            out.append("a parameter-space tool takes the loss batch as keyword-only `data=`")
    if names[:1] == ["model"] and len(params) > 1 and params[1].kind is not KW:
        if params[1].name in NOT_MODEL_INPUTS and not exempt(params[1].name):
            out.append(f"model inputs are `x`, not `{params[1].name}`")
    if pkg == "visjax.attribution" and names[:3] == ["model", "x", "target"]:
        head = [p.kind for p in params[:3]]
        if head != [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 3 or any(
            p.kind is not KW for p in params[3:]
        ):
            out.append("an attribution method is exactly `(model, x, target, *, ...)`")
    if pkg == "visjax.plot" and not exempt("ax"):
        where = [sig.parameters[n] for n in ("ax", "fig") if n in sig.parameters]
        if len(where) != 1 or where[0].kind is not KW or where[0].default is not None:
            out.append("a plot takes exactly one of `ax=None` / `fig=None`, keyword-only")
    return out


def test_every_package_has_public_functions():
    pkgs = {q.rpartition(".")[0] for q in FUNCTIONS}
    for pkg in (
        "visjax.attribution",
        "visjax.curvature",
        "visjax.evaluation",
        "visjax.featviz",
        "visjax.gradstats",
        "visjax.inspect",
        "visjax.landscape",
        "visjax.plot",
    ):
        assert pkg in pkgs, pkg
    for qualname, _ in EXEMPT:  # an exemption names a function that exists
        assert qualname in FUNCTIONS, qualname
    for qualname in METHOD_CALLABLE | KEY_REQUIRED:
        assert qualname in FUNCTIONS, qualname


@pytest.mark.parametrize("qualname", sorted(FUNCTIONS))
def test_signature_follows_the_convention(qualname):
    problems = _problems(qualname, FUNCTIONS[qualname])
    assert not problems, f"{qualname}{inspect.signature(FUNCTIONS[qualname])}: " + "; ".join(
        problems
    )


def test_no_public_draw_twins():
    for pkg in _packages():
        mod = importlib.import_module(pkg)
        bad = [n for n in getattr(mod, "__all__", ()) if n.startswith("draw_")]
        assert not bad, f"{pkg}: {bad}"
