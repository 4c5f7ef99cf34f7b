"""Tests for lungtrial.imaging.dicom._index: the header index of a folder (unreadable, truncated, odd files)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from lungtrial.imaging import dicom
from lungtrial.errors import InputError

from dicom_files import named, no_identifiers, write_stack


@pytest.mark.parametrize(
    ("cut", "compressed"),
    [(100, False), (1200, False), (300, True)],
    ids=["in-pixel-data", "in-header", "rle-in-pixel-data"],
)
def test_truncated_file_is_flagged_and_excludes(tmp_path, truth, cut, compressed):
    folder = tmp_path / "scan"
    rle = (lambda ds, k: ds.compress(RLELossless, encoding_plugin="pydicom")) if compressed else None
    write_stack(folder, truth, edit=rle)
    data = (folder / "IM0010.dcm").read_bytes()
    (folder / "IM0010.dcm").write_bytes(data[:-cut])
    index = dicom.index_folder(folder)
    row = index.set_index("path").loc["IM0010.dcm"]
    assert not row["readable"] and row["error"].startswith("truncated")
    series = dicom.ingest(folder, "S1")
    assert series["status"] == "excluded"
    assert any("truncated" in r and named(folder, "IM0010.dcm") in r for r in series["reasons"] + series["warnings"])


@pytest.mark.parametrize("keep", [140, 300, 700], ids=["in-file-meta", "before-series", "before-pixel-data"])
def test_file_cut_in_its_header_is_unreadable_not_a_missing_slice(tmp_path, truth, keep):
    folder = tmp_path / "scan"
    write_stack(folder, truth, names=[f"1.2.826.0.1.3680043.9.{k}.dcm" for k in range(truth.shape[0])])
    cut = "1.2.826.0.1.3680043.9.10.dcm"
    (folder / cut).write_bytes((folder / cut).read_bytes()[:keep])
    series = dicom.ingest(folder, "S1-D7")
    assert series["status"] == "excluded"
    (reason,) = series["reasons"]
    assert reason.startswith("truncated") and f"{named(folder, cut)};" in reason
    assert "missing" not in reason
    no_identifiers(series)


def test_random_bytes_are_not_dicom(tmp_path):
    (tmp_path / "blob").write_bytes(b"\x08\x00\x16\x00" + bytes(range(256)) * 8)
    (tmp_path / "empty").write_bytes(b"")
    index = dicom.index_folder(tmp_path)
    assert not index["is_dicom"].any() and (index["error"] == "not a DICOM file").all()


def test_empty_folder_and_missing_folder(tmp_path):
    series = dicom.ingest(tmp_path, "S1")
    assert series["status"] == "excluded" and "No DICOM image" in series["reasons"][0]
    with pytest.raises(InputError, match="does not exist"):
        dicom.index_folder(tmp_path / "nope")


def test_file_without_preamble_is_indexed(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(path, enforce_file_format=False, implicit_vr=True, little_endian=True)
        assert path.read_bytes()[128:132] != b"DICM"
    index = dicom.index_folder(folder)
    assert index["is_image"].all() and index["readable"].all()
    series = dicom.ingest(folder, "S1")
    np.testing.assert_array_equal(dicom.read_volume(folder, series).hu, truth)


def test_broken_link_is_an_unreadable_file_not_a_crash(tmp_path, truth):
    """A dangling link (or a file removed while the folder is read) is one unreadable file; the series is read from
    the rest, and no path reaches the outputs."""
    folder = tmp_path / "DOE^JOHN"
    write_stack(folder, truth)
    (folder / "zz-dangling.dcm").symlink_to(tmp_path / "gone.dcm")
    index = dicom.index_folder(folder)
    row = index[index["file"] == "zz-dangling.dcm"].iloc[0]
    assert row["error"].startswith("unreadable")
    series = dicom.ingest(folder, "S1", index=index)
    assert series["status"] == "ok", series["reasons"]
    no_identifiers(series)


def test_hidden_files_are_not_part_of_a_scan(tmp_path):
    """Hidden files and folders (a file manager's .DS_Store, macOS ._ copies, the .snakemake_timestamp Snakemake
    leaves in a folder it wrote) are neither indexed nor numbered, nor part of the folder's fingerprint: the
    workflow's rule and the CLI name the files of one folder alike."""
    import numpy as np

    from lungtrial.demo.dicomwrite import write_series

    folder = tmp_path / "scan"
    write_series(np.zeros((3, 16, 16), np.int16), (2.0, 1.0, 1.0), folder)
    before_index = dicom.index_folder(folder)
    before_print = dicom.folder_fingerprint(folder)
    (folder / ".snakemake_timestamp").write_text("")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "._IM0001").write_bytes(b"\0\5\26\7")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "slice.dcm").write_bytes((folder / sorted(before_index["file"])[0]).read_bytes())
    after = dicom.index_folder(folder)
    assert list(after["file"]) == list(before_index["file"])
    assert list(after["label"]) == list(before_index["label"])
    assert dicom.folder_fingerprint(folder) == before_print
