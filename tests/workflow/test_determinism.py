"""Byte-identical outputs: every writer gives the same bytes for the same content, whenever and wherever it writes.

Each writer writes the same content twice, under two different file names (the atomic writes' temporary names
differ too) and at two different times where a clock could leak in; the bytes must be equal.
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest


def _same_bytes(a, b) -> None:
    assert a.read_bytes() == b.read_bytes(), f"{a.name} and {b.name} differ"


def test_nifti_mask_has_no_time_or_file_name_in_its_gzip_header(tmp_path, monkeypatch):
    import time

    from lungtrial.imaging.quantify import write_nifti

    labels = (np.arange(6 * 7 * 8).reshape(6, 7, 8) % 3).astype(np.uint8)
    place = ((2.0, 0.7, 0.7), (-100.0, -120.0, 50.0), np.eye(3))
    write_nifti(labels, tmp_path / "a.nii.gz", *place)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600.0)  # a later run: gzip would stamp this time
    write_nifti(labels, tmp_path / "b.nii.gz", *place)
    _same_bytes(tmp_path / "a.nii.gz", tmp_path / "b.nii.gz")
    header = (tmp_path / "a.nii.gz").read_bytes()[:10]
    assert header[3] & 0x08 == 0, "gzip header names a file"
    assert header[4:8] == b"\0\0\0\0", "gzip header carries a modification time"
    assert len(gzip.decompress((tmp_path / "a.nii.gz").read_bytes())) == 352 + labels.size


def _figure():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1, 2], [1, 3, 2], marker="o", label="UC-MSC (n=2)")
    ax.fill_between([0, 1, 2], [0, 1, 0], [1, 2, 1], alpha=0.3)  # clip paths and hatches get hashed ids
    ax.imshow([[0, 1], [1, 0]], extent=(0, 1, 0, 1))
    ax.legend()
    return fig


def test_plots_svg_and_png_are_byte_identical(tmp_path):
    from lungtrial.io import write_figure as save_figure

    save_figure(_figure(), tmp_path / "a.png", tmp_path / "a.svg")
    save_figure(_figure(), tmp_path / "b.png", tmp_path / "b.svg")
    _same_bytes(tmp_path / "a.svg", tmp_path / "b.svg")
    _same_bytes(tmp_path / "a.png", tmp_path / "b.png")
    svg = (tmp_path / "a.svg").read_text()
    assert "<dc:date>" not in svg


def test_plots_leave_the_global_svg_salt_alone(tmp_path):
    import matplotlib

    from lungtrial.io import write_figure as save_figure

    before = matplotlib.rcParams["svg.hashsalt"]
    save_figure(_figure(), tmp_path / "a.png", tmp_path / "a.svg")
    assert matplotlib.rcParams["svg.hashsalt"] == before


def test_qc_pictures_are_byte_identical(tmp_path):
    from lungtrial.imaging.qc import message_figure, qc_figure

    hu = np.full((12, 30, 40), 40, dtype=np.int16)
    lungs = np.zeros(hu.shape, dtype=np.uint8)
    lungs[2:10, 6:24, 4:18] = 1
    lungs[2:10, 6:24, 22:36] = 2
    hu[lungs > 0] = -850
    opacity = np.zeros(hu.shape, dtype=np.uint8)
    opacity[4:7, 12:18, 6:12] = 1
    for name in ("a", "b"):
        qc_figure(hu, lungs, opacity, (5.0, 0.7, 0.7), "P01  day 7", tmp_path / f"qc_{name}.png", dpi=50)
        message_figure("P01  day 7", "excluded: no CT series", tmp_path / f"card_{name}.png", dpi=50)
    _same_bytes(tmp_path / "qc_a.png", tmp_path / "qc_b.png")
    _same_bytes(tmp_path / "card_a.png", tmp_path / "card_b.png")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_are_byte_identical(tmp_path, suffix):
    from lungtrial.io import write_table

    table = pd.DataFrame(
        {
            "subject_id": ["P01", "P02"],
            "datetime": pd.to_datetime(["2020-02-01 08:00", "2020-02-02 09:30"]),
            "value": [1.5, np.nan],
            "flag": pd.array([True, None], dtype="boolean"),
        }
    )
    write_table(table, tmp_path / f"a{suffix}")
    write_table(table, tmp_path / f"b{suffix}")
    _same_bytes(tmp_path / f"a{suffix}", tmp_path / f"b{suffix}")


def test_transform_files_have_no_time_in_them(tmp_path):
    """ITK writes the displacement field as HDF5, whose object headers carry the time of writing; save_transform
    clears them, so two writes give the same bytes, and the file still reads."""
    import time

    from lungtrial import parallel
    from lungtrial.imaging.registration import load_transform, save_transform

    sitk = parallel.simpleitk()
    affine = sitk.AffineTransform(3)
    affine.SetTranslation((1.0, -2.0, 0.5))

    def field():
        image = sitk.GetImageFromArray(np.full((6, 5, 4, 3), 0.25), isVector=True)
        image.SetSpacing((2.0, 2.0, 3.0))
        return sitk.DisplacementFieldTransform(image)

    save_transform(affine, field(), tmp_path / "a")
    time.sleep(1.1)  # HDF5's times are whole seconds
    save_transform(affine, field(), tmp_path / "b")
    for name in ("affine.tfm", "deformable.h5"):
        _same_bytes(tmp_path / "a" / name, tmp_path / "b" / name)
    whole = load_transform(tmp_path / "a")
    assert np.allclose(whole.TransformPoint((0.0, 0.0, 0.0)), (1.25, -1.75, 0.75))
