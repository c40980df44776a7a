"""visjax.plot.attention: grids, heatmaps, ViT patch maps and the HTML view."""

import json
import re

import numpy as np
import pytest

from visjax.plot.attention import (
    attention_grid,
    attention_heatmap,
    attention_html,
    patch_attention,
    token_scores,
)


@pytest.fixture(scope="module")
def maps():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(2, 3, 5, 5))
    return a / a.sum(-1, keepdims=True)


def test_grid_has_a_cell_per_layer_and_head(maps):
    fig = attention_grid(maps)
    assert len([ax for ax in fig.axes if ax.images]) == 6


def test_heatmap_and_token_scores(maps):
    m = maps[0, 0].copy()
    m[0, 0] = np.nan
    fig = attention_heatmap(m, tokens=list("abcde"))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list("abcde")
    fig = token_scores(list("abcde"), m[1], highlight=2)
    assert len(fig.axes[0].patches) == 1


def test_patch_attention_over_the_image():
    fig = patch_attention(np.zeros((8, 8)), np.arange(16.0))
    assert fig.axes[0].images
    with pytest.raises(ValueError, match="grid"):
        patch_attention(np.zeros((8, 8)), np.arange(15.0))


def test_bad_shapes_refused(maps):
    with pytest.raises(ValueError, match="maps"):
        attention_grid(maps[0])
    with pytest.raises(ValueError, match="tokens"):
        attention_heatmap(maps[0, 0], tokens=["a"])
    with pytest.raises(ValueError, match="attention"):
        attention_heatmap(maps[0, 0, :3])


def test_html_is_self_contained_and_escaped(tmp_path, maps):
    path = attention_html(
        tmp_path / "a.html", maps, tokens=["</script>", "b", "c", "d", "e"], title="<x>"
    )
    html = path.read_text()
    assert "http://" not in html and "https://" not in html
    assert html.count("</script>") == 1 and "&lt;x&gt;" in html
    blob = re.search(r"const D = (.*);\n", html).group(1)
    data = json.loads(blob)
    assert data["tokens"][0] == "</script>"
    np.testing.assert_allclose(data["maps"], maps, atol=1e-4)
    assert not list(tmp_path.glob(".*"))  # atomic: no temporary left behind
