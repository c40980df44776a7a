"""export_projector writes files TensorBoard's projector reads: TSVs, the config, the sprite."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from PIL import Image

from visjax.embed import projector
from visjax.embed.projector import export_projector

PROTO = "tensorboard/plugins/projector/projector_config.proto"


def _projector_config_class():
    """TensorBoard's ``ProjectorConfig`` message class: from tensorboard when installed, else built
    from the message definition in tensorboard's ``projector_config.proto`` (same field numbers)."""
    try:
        from tensorboard.plugins.projector.projector_config_pb2 import (
            ProjectorConfig,
        )

        return ProjectorConfig
    except ImportError:
        pass
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="visjax_test_" + PROTO, package="visjax_test")

    def message(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name

    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    message(
        "SpriteMetadata",
        [
            ("image_path", 1, f.TYPE_STRING, opt, ""),
            ("single_image_dim", 2, f.TYPE_UINT32, rep, ""),
        ],
    )
    message(
        "EmbeddingInfo",
        [
            ("tensor_name", 1, f.TYPE_STRING, opt, ""),
            ("metadata_path", 2, f.TYPE_STRING, opt, ""),
            ("bookmarks_path", 3, f.TYPE_STRING, opt, ""),
            ("tensor_shape", 4, f.TYPE_UINT32, rep, ""),
            ("sprite", 5, f.TYPE_MESSAGE, opt, ".visjax_test.SpriteMetadata"),
            ("tensor_path", 8, f.TYPE_STRING, opt, ""),
        ],
    )
    message(
        "ProjectorConfig",
        [
            ("model_checkpoint_path", 1, f.TYPE_STRING, opt, ""),
            ("embeddings", 2, f.TYPE_MESSAGE, rep, ".visjax_test.EmbeddingInfo"),
            ("model_checkpoint_dir", 3, f.TYPE_STRING, opt, ""),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("visjax_test.ProjectorConfig")
    )


def _config(folder):
    from google.protobuf import text_format

    return text_format.Parse(
        (folder / "projector_config.pbtxt").read_text(), _projector_config_class()()
    )


def _tsv(path):
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_files_parse(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 5)).astype(np.float32)
    images = rng.uniform(size=(10, 8, 8))
    out = export_projector(tmp_path / "p", x, labels=np.arange(10) % 3, images=images, name="acts")
    assert out == tmp_path / "p"
    rows = _tsv(out / "acts_tensors.tsv")
    assert len(rows) == 10 and all(len(r) == 5 for r in rows)
    np.testing.assert_array_equal(np.asarray(rows, dtype=np.float32), x)  # float32 round trip
    meta = (out / "acts_metadata.tsv").read_text().splitlines()
    assert meta == [str(i % 3) for i in range(10)]  # one column, no header

    config = _config(out)
    assert len(config.embeddings) == 1
    e = config.embeddings[0]
    assert e.tensor_name == "acts"
    assert e.tensor_path == "acts_tensors.tsv" and e.metadata_path == "acts_metadata.tsv"
    assert e.sprite.image_path == "acts_sprite.png"
    assert list(e.sprite.single_image_dim) == [8, 8]
    for p in (e.tensor_path, e.metadata_path, e.sprite.image_path):
        assert (out / p).is_file()

    side = math.ceil(math.sqrt(10))
    with Image.open(out / "acts_sprite.png") as sprite:
        assert sprite.size == (side * 8, side * 8) and sprite.mode == "L"
        a = np.asarray(sprite)
    np.testing.assert_array_equal(a[:8, 8:16], np.round(images[1] * 255).astype(np.uint8))
    assert not a[-8:, -8:].any()  # the unused cells are black


def test_large_images_shrink_to_the_sprite_limit(tmp_path, monkeypatch):
    # the projector's limit is 8192 px; a limit of 64 px exercises the same code fast
    monkeypatch.setattr(projector, "SPRITE_LIMIT", 64)
    n = 10  # 4 columns: at most 64 // 4 = 16 px per thumbnail
    images = np.zeros((n, 30, 15, 3), np.uint8) + 200
    export_projector(tmp_path, np.zeros((n, 2)), images=images)
    config = _config(tmp_path)
    w, h = config.embeddings[0].sprite.single_image_dim
    assert (w, h) == (8, 16)
    with Image.open(tmp_path / "embedding_sprite.png") as sprite:
        assert sprite.size == (4 * w, 4 * h) and sprite.mode == "RGB"
        assert np.asarray(sprite)[:16, :8].min() >= 199  # the image kept, shrunk


def test_columns_have_a_header_and_are_escaped(tmp_path):
    export_projector(
        tmp_path,
        np.ones((3, 2, 2)),  # (N, ...) flattened to (N, 4)
        labels={"digit": [1, 2, 3], "note": ["a\tb", "c\nd", "e"]},
    )
    assert _tsv(tmp_path / "embedding_metadata.tsv") == [
        ["digit", "note"],
        ["1", "a b"],
        ["2", "c d"],
        ["3", "e"],
    ]
    assert [len(r) for r in _tsv(tmp_path / "embedding_tensors.tsv")] == [4, 4, 4]


def test_several_names_share_the_config(tmp_path):
    export_projector(tmp_path, np.zeros((4, 3)), name="before")
    export_projector(tmp_path, np.zeros((4, 3)), name="after", labels=list("abcd"))
    export_projector(tmp_path, np.ones((5, 3)), name="before")  # replaced, not duplicated
    config = _config(tmp_path)
    assert [e.tensor_name for e in config.embeddings] == ["after", "before"]
    assert len(_tsv(tmp_path / "before_tensors.tsv")) == 5


def test_files_have_the_umask_mode_and_no_temporaries(tmp_path):
    old = os.umask(0o027)
    try:
        export_projector(
            tmp_path, np.zeros((4, 2)), labels=[0, 1, 2, 3], images=np.zeros((4, 2, 2))
        )
    finally:
        os.umask(old)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in names if n.endswith(".tmp")]
    for p in tmp_path.iterdir():
        assert p.stat().st_mode & 0o777 == 0o640, p.name


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data": np.zeros((0, 3))}, "`data`"),
        ({"data": np.zeros(5)}, "`data`"),
        ({"data": np.array([[1.0, np.nan]])}, "`data`"),
        ({"data": np.zeros((3, 2)), "labels": [1, 2]}, "`labels`"),
        ({"data": np.zeros((3, 2)), "labels": {}}, "`labels`"),
        ({"data": np.zeros((3, 2)), "images": np.zeros((2, 4, 4))}, "`images`"),
        ({"data": np.zeros((3, 2)), "images": np.zeros((3, 4))}, "`images`"),
        ({"data": np.zeros((3, 2)), "name": "a/b"}, "`name`"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export_projector(tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())  # nothing written before the checks pass
