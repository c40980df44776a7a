import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from visjax.landscape.export import load_npz, save_npz, save_vtk

XS = np.linspace(-1.0, 1.0, 4)
YS = np.linspace(0.0, 2.0, 3)


def _surface():
    x, y = np.meshgrid(XS, YS, indexing="ij")
    return 1.0 + x + 10.0 * y  # asymmetric: tells i from j


def _read_vtp(path):
    root = ET.parse(path).getroot()
    piece = root.find("PolyData/Piece")

    def array(parent, name=None):
        for a in root.find(f"PolyData/Piece/{parent}").findall("DataArray"):
            if name is None or a.get("Name") == name:
                dtype = np.int64 if a.get("type") in ("Int64", "UInt8") else np.float64
                return a, np.array((a.text or "").split(), dtype=dtype)
        raise KeyError(name)

    return root, piece, array


# npz


def test_npz_round_trip_with_config(tmp_path):
    path = tmp_path / "surface.npz"
    config = {"directions": "filter", "steps": np.int64(5), "range": (-1.0, 1.0)}
    save_npz(path, xs=XS, ys=YS, loss=_surface(), config=config, note="plane")
    out = load_npz(path)
    assert list(out) == ["xs", "ys", "loss", "config", "note"]
    np.testing.assert_array_equal(out["xs"], XS)
    np.testing.assert_array_equal(out["loss"], _surface())
    assert out["loss"].dtype == np.float64
    assert out["config"] == {"directions": "filter", "steps": 5, "range": [-1.0, 1.0]}
    assert str(out["note"]) == "plane"
    assert [p.name for p in tmp_path.iterdir()] == ["surface.npz"]  # no temp file left


def test_npz_keeps_path_and_refuses_objects(tmp_path):
    save_npz(tmp_path / "a.bin", path=np.arange(3))  # no suffix added; "path" is a fine name
    np.testing.assert_array_equal(load_npz(tmp_path / "a.bin")["path"], np.arange(3))
    with pytest.raises(TypeError, match="object array"):
        save_npz(tmp_path / "b.npz", bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="reserved"):
        save_npz(tmp_path / "b.npz", __json__=[1])
    assert not (tmp_path / "b.npz").exists()


# vtp


def test_vtp_header_points_values_and_quads(tmp_path):
    path = save_vtk(tmp_path / "s.vtp", XS, YS, _surface(), name="train_loss")
    root, piece, array = _read_vtp(path)
    assert root.tag == "VTKFile" and root.get("type") == "PolyData"
    assert root.get("byte_order") == "LittleEndian"
    assert path.read_text().startswith('<?xml version="1.0"?>\n<VTKFile type="PolyData"')
    m, n = len(XS), len(YS)
    assert int(piece.get("NumberOfPoints")) == m * n
    assert int(piece.get("NumberOfPolys")) == (m - 1) * (n - 1)
    assert root.find("PolyData/Piece/PointData").get("Scalars") == "train_loss"

    _, pts = array("Points")
    pts = pts.reshape(-1, 3)
    assert pts.shape == (m * n, 3)
    i, j = 2, 1  # point i * n + j is (xs[i], ys[j], surface[i, j])
    np.testing.assert_array_equal(pts[i * n + j], [XS[i], YS[j], _surface()[i, j]])
    np.testing.assert_array_equal(pts[:, 2], _surface().reshape(-1))  # exact (repr round trip)
    _, loss = array("PointData", "train_loss")
    np.testing.assert_array_equal(loss, _surface().reshape(-1))
    _, valid = array("PointData", "valid")
    assert valid.tolist() == [1] * (m * n)

    _, conn = array("Polys", "connectivity")
    _, offsets = array("Polys", "offsets")
    quads = conn.reshape(-1, 4)
    assert offsets.tolist() == list(range(4, 4 * len(quads) + 1, 4))
    np.testing.assert_array_equal(quads[0], [0, n, n + 1, 1])
    # counter-clockwise seen from +z: positive signed area in the (x, y) plane
    xy = pts[quads[0], :2]
    area = 0.5 * np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1])
    assert area > 0
    assert [p.name for p in tmp_path.iterdir()] == ["s.vtp"]  # no temp file left


def test_vtp_nan_makes_holes_zmax_clips_and_log(tmp_path):
    surface = _surface()
    surface[0, 0] = np.nan
    surface[3, 2] = np.inf
    path = save_vtk(tmp_path / "s.vtp", XS, YS, surface, zmax=15.0, log=True)
    _, piece, array = _read_vtp(path)
    _, valid = array("PointData", "valid")
    assert valid.reshape(4, 3)[0, 0] == 0 and valid.sum() == 11
    _, conn = array("Polys", "connectivity")
    assert int(piece.get("NumberOfPolys")) == 5  # the quad at corner (0, 0) is left out
    assert 0 not in conn
    _, loss = array("PointData", "loss")
    expected = np.log(np.minimum(_surface(), 15.0) + 0.1).reshape(-1)
    np.testing.assert_allclose(loss[1:], expected[1:])  # +Inf clipped to zmax, then logged
    assert loss[0] == loss.max()  # the NaN point sits at the top, outside every quad
    _, pts = array("Points")
    np.testing.assert_array_equal(pts.reshape(-1, 3)[:, 2], loss)


def test_vtp_all_nan_and_bad_input(tmp_path):
    path = save_vtk(tmp_path / "s.vtp", XS, YS, np.full((4, 3), np.nan))
    _, piece, array = _read_vtp(path)
    assert piece.get("NumberOfPolys") == "0" and array("Polys", "connectivity")[1].size == 0
    with pytest.raises(ValueError, match=r"\.vtp"):
        save_vtk(tmp_path / "s.vtk", XS, YS, _surface())
    with pytest.raises(ValueError, match=r"shape \(len\(xs\), len\(ys\)\)"):
        save_vtk(tmp_path / "t.vtp", XS, YS, _surface().T)
    assert [p.name for p in tmp_path.iterdir()] == ["s.vtp"]


def test_vtp_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_vtk(tmp_path / "s.vtp", XS, YS, _surface())
    before = path.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_vtk(path, XS, YS, 2 * _surface())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.vtp"]
