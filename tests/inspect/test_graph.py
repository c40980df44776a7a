import itertools
import xml.etree.ElementTree as ET

import jax.numpy as jnp
import pytest

import visjax
from visjax.inspect import Graph, graph
from visjax.zoo import digits_cnn, digits_resnet

SKIPS = {
    ("stem", "stages.0.blocks.0"),
    ("stages.0.blocks.0", "stages.1.blocks.0.proj"),
    ("stages.1.blocks.0.proj", "stages.1.blocks.0"),
    ("stages.1.blocks.0", "stages.2.blocks.0.proj"),
    ("stages.2.blocks.0.proj", "stages.2.blocks.0"),
}


def _preds(g: Graph, node: str) -> set[str]:
    return {a for a, b in g.edges if b == node}


def test_resnet_skip_edges():
    g = graph(digits_resnet())
    assert SKIPS <= set(g.edges)
    assert _preds(g, "stages.0.blocks.0") == {"stem", "stages.0.blocks.0.conv2"}
    assert _preds(g, "stages.0.blocks.0.conv1") == {"stem"}
    # a parent that ends in its last child is that child's node
    assert "stages.0" not in {n.name for n in g.nodes}

    plain = graph(digits_resnet(skip=False))
    assert not SKIPS & set(plain.edges)
    for s in range(3):
        assert _preds(plain, f"stages.{s}.blocks.0") == {f"stages.{s}.blocks.0.conv2"}
    assert len(plain.edges) == len(plain.nodes) - 1  # a chain


def test_depth_collapses_into_parents():
    g = graph(digits_resnet(), depth=0)
    names = ["input", "stem", "stages.0", "stages.1", "stages.2", "fc", "output"]
    assert [n.name for n in g.nodes] == names
    assert g.edges == list(itertools.pairwise(names))
    shapes = {n.name: n.shape for n in g.nodes}
    assert shapes["stages.1"] == (1, 4, 4, 32) and shapes["output"] == (1, 10)
    with pytest.raises(ValueError, match="`depth`"):
        graph(digits_resnet(), depth=-1)


def test_branches_of_a_plain_function():
    def apply(p, x):
        a = visjax.tag(x @ p["a"], "a")
        b = visjax.tag(x @ p["b"], "b")
        return visjax.tag(a * b, "c")

    model = visjax.as_model(apply, {"a": jnp.ones((3, 2)), "b": jnp.ones((3, 2))}, input_shape=(3,))
    g = graph(model)
    assert set(g.edges) == {
        ("input", "a"),
        ("input", "b"),
        ("a", "c"),
        ("b", "c"),
        ("c", "output"),
    }


def test_dot_and_svg():
    g = graph(digits_resnet())
    dot = g.to_dot()
    lines = dot.splitlines()
    assert lines[0] == "digraph model {" and lines[-1] == "}"
    assert sum("->" in ln for ln in lines) == len(g.edges)
    assert sum("[label=" in ln for ln in lines) == len(g.nodes)
    assert '"stem" -> "stages.0.blocks.0";' in dot
    svg = g.to_svg()
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for n in g.nodes:
        assert n.name in texts
    assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) == len(g.nodes)
    small = graph(digits_cnn("linen"))
    assert small.edges == [
        ("input", "conv1"),
        ("conv1", "conv2"),
        ("conv2", "fc"),
        ("fc", "output"),
    ]
    ET.fromstring(small.to_svg())
