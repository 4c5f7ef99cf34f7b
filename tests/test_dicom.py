"""Tests for lungtrial.imaging.dicom: every odd series is built here with pydicom (small matrices, tmp_path)."""

from __future__ import annotations

import json
import random

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from lungtrial.imaging import dicom
from lungtrial.errors import InputError, ScanExcluded

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECRET = "Doe^Jane"  # a planted identifier that must never appear in outputs


def truth_volume(shape=(25, 24, 32)) -> np.ndarray:
    """HU volume in (z sup, y post, x left) order whose every axis and direction is distinguishable."""
    z, y, x = np.indices(shape)
    return (-1000 + 40 * z + 3 * y + x + (x > shape[2] - 5) * 500).astype(np.int16)


def new_ds(sop_class=CTImageStorage, series_uid="1.2.826.0.1.3680043.2.1", modality="CT") -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = SECRET
    ds.PatientID = "SECRET-ID-123"
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ConvolutionKernel = "B30f"
    return ds


def set_pixels(ds: Dataset, stored: np.ndarray, *, signed: bool = True, intercept: float | None = -1024.0) -> None:
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = int(signed)
    if intercept is not None:
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = 1
    ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()


def write_stack(
    folder,
    hu: np.ndarray,
    *,
    spacing=(2.5, 0.7, 0.7),
    row=(1, 0, 0),
    col=(0, 1, 0),
    step=None,
    names=None,
    signed=True,
    intercept=-1024.0,
    series_uid="1.2.826.0.1.3680043.2.1",
    origin=(-10.0, -20.0, -100.0),
    skip=(),
    edit=None,
) -> list[str]:
    """Write the LPS-ordered truth volume ``hu`` (z, y, x) as axial slices with the given row/column directions.

    ``row``/``col`` are signed unit axes; each file's pixel (i, j) holds the truth voxel at
    position + j * dx * row + i * dy * col. ``step`` overrides the vector between slice positions (tilt).
    """
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = hu.shape
    dz, dy, dx = spacing
    row, col = np.array(row, float), np.array(col, float)
    normal = np.cross(row, col)
    size = np.array([nx, ny, nz]) - 1
    sp = np.array([dx, dy, dz])
    origin = np.asarray(origin, float)
    # in-plane extents: the row axis spans the truth's axis |row|
    n_cols = int(size[np.argmax(np.abs(row))] + 1)
    n_rows = int(size[np.argmax(np.abs(col))] + 1)
    files = []
    order = list(range(nz)) if normal[2] > 0 else list(range(nz))[::-1]
    for k, zi in enumerate(order):
        if zi in skip:
            continue
        # corner voxel index of this slice: start at the far end of negatively oriented axes
        corner = np.zeros(3)
        corner[2] = zi
        for vec in (row, col):
            axis = int(np.argmax(np.abs(vec)))
            corner[axis] = size[axis] if vec[axis] < 0 else 0
        position = origin + corner * sp
        if step is not None:
            position = origin + np.asarray(step, float) * zi + (corner * sp - np.array([0, 0, zi * dz]))
        i, j = np.indices((n_rows, n_cols))
        idx = corner[None, None, :] + j[..., None] * row + i[..., None] * col
        idx = idx.astype(int)
        plane = hu[zi, idx[..., 1], idx[..., 0]]
        ds = new_ds(series_uid=series_uid)
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in (*row, *col)]
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.InstanceNumber = nz - k  # lies about the order
        stored = plane.astype(np.int32) - (int(intercept) if intercept is not None else 0)
        set_pixels(ds, stored, signed=signed, intercept=intercept)
        if edit is not None:
            edit(ds, k)
        name = names[k] if names is not None else f"IM{k:04d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        files.append(name)
    return files


def no_identifiers(obj) -> None:
    text = json.dumps(obj)
    assert SECRET not in text and "SECRET-ID" not in text and "1.2.826.0.1.3680043" not in text


@pytest.fixture
def truth():
    return truth_volume()


@pytest.fixture(autouse=True)
def read_both_ways(monkeypatch):
    """Every ``read_volume`` call in these tests also runs with the folder index (direct reads at the recorded
    pixel offsets) and must give the same volume, padding and geometry, or the same error."""
    original = dicom.read_volume

    def both(folder, series, **options):
        def run(**extra):
            try:
                return original(folder, series, **options, **extra), None
            except Exception as exc:  # noqa: BLE001 - compared below
                return None, exc

        plain, error = run()
        indexed, indexed_error = run(index=dicom.index_folder(folder))
        assert type(indexed_error) is type(error) and str(indexed_error) == str(error)
        if error is not None:
            raise error
        np.testing.assert_array_equal(indexed.hu, plain.hu)
        assert (indexed.padding is None) == (plain.padding is None)
        if plain.padding is not None:
            np.testing.assert_array_equal(indexed.padding, plain.padding)
        assert indexed.spacing == plain.spacing and indexed.origin == plain.origin
        np.testing.assert_array_equal(indexed.direction, plain.direction)
        return plain

    monkeypatch.setattr(dicom, "read_volume", both)
    return original


def test_shuffled_names_and_lying_instance_numbers_are_ordered_by_position(tmp_path, truth):
    names = [f"{n:03d}" for n in random.Random(3).sample(range(100, 999), truth.shape[0])]
    write_stack(tmp_path / "scan", truth, names=names)
    series = dicom.ingest(tmp_path / "scan", "S01-D00")
    assert series["status"] == "ok", series["reasons"]
    json.dumps(series)
    no_identifiers(series)
    vol = dicom.read_volume(tmp_path / "scan", series)
    assert vol.hu.dtype == np.int16
    np.testing.assert_array_equal(vol.hu, truth)
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.7))
    assert vol.origin == pytest.approx((-10.0, -20.0, -100.0))
    np.testing.assert_allclose(vol.direction, np.eye(3))
    assert vol.padding is None
    assert series["geometry"]["shape"] == list(truth.shape)


@pytest.mark.parametrize(
    ("row", "col"),
    [((-1, 0, 0), (0, 1, 0)), ((1, 0, 0), (0, -1, 0)), ((-1, 0, 0), (0, -1, 0)), ((0, 1, 0), (1, 0, 0))],
    ids=["x-flipped-feet-first", "y-flipped", "prone", "transposed-reversed-z"],
)
def test_any_orientation_gives_the_same_reoriented_volume(tmp_path, truth, row, col):
    write_stack(tmp_path / "scan", truth, row=row, col=col)
    series = dicom.ingest(tmp_path / "scan", "S01-D00")
    assert series["status"] == "ok", series["reasons"]
    vol = dicom.read_volume(tmp_path / "scan", series)
    np.testing.assert_array_equal(vol.hu, truth)
    assert vol.origin == pytest.approx((-10.0, -20.0, -100.0))
    np.testing.assert_allclose(vol.direction, np.eye(3), atol=1e-9)
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.7))


def named(folder, name: str) -> str:
    """How outputs name the file ``name`` of ``folder``: ``file N``, its number among the folder's sorted files."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return f"file {files.index(name) + 1}"


def test_missing_slice_excludes_scan_naming_files(tmp_path, truth):
    write_stack(tmp_path / "scan", truth, skip=(12,))
    series = dicom.ingest(tmp_path / "scan", "S01-D00")
    assert series["status"] == "excluded"
    (reason,) = series["reasons"]
    gap = f"between {named(tmp_path / 'scan', 'IM0011.dcm')} and"
    assert "1 slice(s) missing" in reason and gap in reason and "5.00 mm" in reason
    assert ".dcm" not in reason
    with pytest.raises(ScanExcluded, match="missing") as raised:
        dicom.ingest(tmp_path / "scan", "S01-D00", strict=True)
    assert str(raised.value).count("S01-D00") == 1
    with pytest.raises(ScanExcluded):
        dicom.read_volume(tmp_path / "scan", series)


def test_uneven_spacing_is_an_error(tmp_path, truth):
    def shift(ds, k):
        if k >= 10:
            ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], ds.ImagePositionPatient[2] + 1.0]

    write_stack(tmp_path / "scan", truth, edit=shift)
    issues = dicom.check_series(
        dicom.index_folder(tmp_path / "scan"),
        dicom.choose_series(dicom.index_folder(tmp_path / "scan")).files,
        scan_id="S1",
    )
    assert [i.code for i in issues] == ["uneven_spacing"]
    assert "3.50 mm apart; expected 2.50 mm" in issues[0].message


def test_duplicate_position_and_duplicate_copy(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    ds = pydicom.dcmread(folder / "IM0005.dcm")
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(folder / "extra.dcm")
    index = dicom.index_folder(folder)
    choice = dicom.choose_series(index)
    issues = dicom.check_series(index, choice.files, scan_id="S1")
    assert any(
        i.code == "duplicate_position" and "IM0005.dcm" in i.message and "extra.dcm" in i.message for i in issues
    )
    (folder / "extra.dcm").unlink()
    (folder / "copy.dcm").write_bytes((folder / "IM0005.dcm").read_bytes())
    index = dicom.index_folder(folder)
    choice = dicom.choose_series(index)
    assert len(choice.files) == 25 and "copy.dcm" not in choice.files
    issues = dicom.check_series(index, choice.files, scan_id="S1")
    assert [(i.code, i.severity) for i in issues] == [("duplicate_file", "warning")]
    issues = dicom.check_series(index, [*choice.files, "copy.dcm"], scan_id="S1")
    assert [(i.code, i.severity) for i in issues] == [("duplicate_file", "error")]


def test_mixed_matrix_is_reported(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    ds = pydicom.dcmread(folder / "IM0007.dcm")
    set_pixels(ds, np.zeros((16, 16)))
    ds.save_as(folder / "IM0007.dcm")
    series = dicom.ingest(folder, "S1")
    assert series["status"] == "excluded"
    text = " ".join(series["reasons"] + series["warnings"])
    odd = f"{named(folder, 'IM0007.dcm')} (16x16)"
    assert "mixed matrix" in text and odd in text and "expected 24x32" in text
    assert "missing" in text  # the odd slice is set aside, leaving a gap


def test_mixed_orientation_in_one_series(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    ds = pydicom.dcmread(folder / "IM0003.dcm")
    ds.SOPInstanceUID = generate_uid()
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(folder / "coronal.dcm")
    index = dicom.index_folder(folder)
    choice = dicom.choose_series(index)
    assert len(choice.files) == 25 and len(choice.candidates) == 2
    issues = dicom.check_series(index, choice.files, scan_id="S1")
    assert [(i.code, i.severity) for i in issues] == [("mixed_orientation", "warning")]
    assert "coronal.dcm (1\\0\\0\\0\\0\\-1); expected 1\\0\\0\\0\\1\\0" in issues[0].message
    issues = dicom.check_series(index, [*choice.files, "coronal.dcm"], scan_id="S1")
    assert ("mixed_orientation", "error") in [(i.code, i.severity) for i in issues]


@pytest.mark.parametrize("tag", ["+18.5", None], ids=["tag-and-orientation", "orientation-only"])
def test_gantry_tilt_spacing_is_projected_step(tmp_path, truth, tag):
    tilt = np.radians(18.5)
    col = (0.0, np.cos(tilt), -np.sin(tilt))  # detector tilted about x, table moves along z

    def add_tag(ds, k):
        if tag is not None:
            ds["GantryDetectorTilt"] = pydicom.DataElement(0x00181120, "DS", tag)

    folder = tmp_path / "scan"
    write_stack(folder, truth, col=col, step=(0, 0, 2.5), edit=add_tag)
    series = dicom.ingest(folder, "S1")
    assert series["status"] == "ok", series["reasons"]
    assert series["geometry"]["spacing"][0] == pytest.approx(2.5 * np.cos(tilt), rel=1e-4)
    assert series["geometry"]["tilt_deg"] == pytest.approx(18.5, abs=0.01)
    (warning,) = series["warnings"]
    assert "gantry tilt 18.5 degrees" in warning
    vol = dicom.read_volume(folder, series)
    assert vol.hu.shape == truth.shape
    assert vol.spacing[0] == pytest.approx(2.5 * np.cos(tilt), rel=1e-4)


def test_gantry_tilt_tag_on_orthogonal_stack_warns(tmp_path, truth):
    def add_tag(ds, k):
        ds["GantryDetectorTilt"] = pydicom.DataElement(0x00181120, "DS", "-7.0")

    write_stack(tmp_path / "scan", truth, edit=add_tag)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "ok"
    assert series["geometry"]["spacing"][0] == pytest.approx(2.5)
    assert "GantryDetectorTilt is 7 degrees" in series["warnings"][0]


def test_non_ct_modality_is_excluded(tmp_path, truth):
    def mr(ds, k):
        ds.Modality = "MR"
        ds.SOPClassUID = MR_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE

    write_stack(tmp_path / "scan", truth, edit=mr)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "excluded"
    assert "modality MR, not CT" in series["reasons"][0]
    index = dicom.index_folder(tmp_path / "scan")
    issues = dicom.check_series(index, list(index["path"]), scan_id="S1")
    assert any(i.code == "non_ct" and "expected CT" in i.message for i in issues)


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


def test_exclusion_names_the_scan_once(tmp_path):
    (tmp_path / "scan").mkdir()
    series = dicom.ingest(tmp_path / "scan", "S1-D7")
    assert series["reasons"] == ["No DICOM image was found in the folder."]
    with pytest.raises(ScanExcluded) as raised:
        dicom.ingest(tmp_path / "scan", "S1-D7", strict=True)
    assert str(raised.value) == "scan S1-D7 excluded: No DICOM image was found in the folder."


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


def test_truncated_copy_of_an_image_is_ignored(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    (folder / "copy.dcm").write_bytes((folder / "IM0010.dcm").read_bytes()[:-100])
    series = dicom.ingest(folder, "S1-D7")
    assert series["status"] == "ok", series["reasons"]
    assert any(w.startswith("truncated") and "outside the series ignored" in w for w in series["warnings"])


def test_random_bytes_are_not_dicom(tmp_path):
    (tmp_path / "blob").write_bytes(b"\x08\x00\x16\x00" + bytes(range(256)) * 8)
    (tmp_path / "empty").write_bytes(b"")
    index = dicom.index_folder(tmp_path)
    assert not index["is_dicom"].any() and (index["error"] == "not a DICOM file").all()


def test_too_few_slices(tmp_path, truth):
    write_stack(tmp_path / "scan", truth[:8])
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "excluded"
    assert "8 slices, fewer than 20" in series["reasons"][0]
    assert dicom.ingest(tmp_path / "scan", "S1", min_slices=5)["status"] == "ok"


def _localizer(folder) -> None:
    ds = new_ds(series_uid="1.2.826.0.1.3680043.2.9")
    ds.SeriesNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImagePositionPatient = [0, -100, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.PixelSpacing = [1, 1]
    set_pixels(ds, np.zeros((32, 32)))
    ds.save_as(folder / "loc.dcm", enforce_file_format=True)


def _dose_screen(folder) -> None:
    ds = new_ds(sop_class=SecondaryCaptureImageStorage, series_uid="1.2.826.0.1.3680043.2.8", modality="OT")
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 8, 3, "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.PlanarConfiguration = 8, 8, 7, 0, 0
    ds.PixelData = bytes(8 * 8 * 3)
    ds.save_as(folder / "dose.dcm", enforce_file_format=True)


def _dicomdir(folder) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "TRIAL"
    ds.DirectoryRecordSequence = Sequence()
    ds.save_as(folder / "DICOMDIR", enforce_file_format=True)


def test_localizer_thick_series_and_other_files(tmp_path, truth):
    folder = tmp_path / "study"
    write_stack(folder / "thin", truth, names=[f"a{k}" for k in range(25)])
    write_stack(
        folder / "thick",
        np.repeat(truth, 2, axis=0)[:25],
        spacing=(5.0, 0.7, 0.7),
        series_uid="1.2.826.0.1.3680043.2.2",
        edit=lambda ds, k: setattr(ds, "SeriesNumber", 3),
    )
    _localizer(folder)
    _dose_screen(folder)
    _dicomdir(folder)
    (folder / "notes.txt").write_text("not dicom\n")
    index = dicom.index_folder(folder)
    assert len(index) == 54
    by_path = index.set_index("path")
    assert not by_path.at["notes.txt", "is_dicom"] and not by_path.at["notes.txt", "is_image"]
    assert by_path.at["DICOMDIR", "readable"] and not by_path.at["DICOMDIR", "is_image"]
    assert by_path.at["dose.dcm", "is_image"] and by_path.at["dose.dcm", "photometric"] == "RGB"
    assert by_path.at["thin/a0", "sop_class"] == "CT Image Storage"
    assert len(by_path.at["thin/a0", "series"]) == 12
    no_identifiers(index.astype(str).to_dict("records"))

    choice = dicom.choose_series(index)
    assert choice.files[0].startswith("thin/") and len(choice.files) == 25
    assert "2.5 mm" in choice.reason and "thinnest" in choice.reason
    cands = choice.candidates.set_index("series_number")
    assert "localizer" in cands.at[1, "why_not"]
    assert "not grey-scale" in cands.loc[cands["n_files"] == 1].query("modality == 'OT'")["why_not"].iloc[0]
    assert bool(cands.at[3, "eligible"])
    most = dicom.choose_series(index, prefer="most_slices", max_slice_thickness_mm=5.0)
    assert most.series == choice.series  # 25 slices each: thinnest breaks the tie
    none_thin = dicom.choose_series(index, prefer_kernels=["B70f"], max_slice_thickness_mm=2.0)
    assert none_thin.series is None and "more than 2 mm" in none_thin.reason

    series = dicom.ingest(folder, "S1")
    assert series["status"] == "ok" and series["warnings"] == []
    assert series["reason"] == choice.reason and series["series"] == choice.series
    assert "set aside: series 1 (localizer" in series["reason"]
    no_identifiers(series)


def test_thick_slices_measured_with_a_warning_up_to_the_limit(tmp_path, truth):
    """Routine 5-10 mm reconstructions are chest CT too: measured, with the partial volume named in a warning;
    thicker than ``max_slice_thickness_mm`` (default 10 mm) is excluded."""
    write_stack(tmp_path / "eight", truth, spacing=(8.0, 0.7, 0.7))
    series = dicom.ingest(tmp_path / "eight", "S1")
    assert series["status"] == "ok"
    assert len(series["warnings"]) == 1 and "slices 8 mm thick, more than 5 mm" in series["warnings"][0]
    assert "partial volume" in series["warnings"][0]
    assert dicom.ingest(tmp_path / "eight", "S1", warn_slice_thickness_mm=8.0)["warnings"] == []
    limited = dicom.ingest(tmp_path / "eight", "S1", max_slice_thickness_mm=5.0)
    assert limited["status"] == "excluded" and "more than 5 mm" in limited["reasons"][0]
    with pytest.raises(InputError, match="warn_slice_thickness_mm is 12 mm, above max_slice_thickness_mm"):
        dicom.ingest(tmp_path / "eight", "S1", warn_slice_thickness_mm=12.0, max_slice_thickness_mm=10.0)
    write_stack(tmp_path / "twelve", truth, spacing=(12.0, 0.7, 0.7))
    thick = dicom.ingest(tmp_path / "twelve", "S1")
    assert thick["status"] == "excluded" and "12 mm thick, more than 10 mm" in thick["reasons"][0]


def test_one_uid_two_overlapping_acquisitions_split_into_subseries(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth, names=[f"a{k}.dcm" for k in range(25)])
    write_stack(
        folder, truth, names=[f"b{k}.dcm" for k in range(25)], edit=lambda ds, k: setattr(ds, "AcquisitionNumber", 2)
    )
    choice = dicom.choose_series(dicom.index_folder(folder))
    assert len(choice.candidates) == 2 and choice.candidates["eligible"].all()
    assert choice.series.endswith(".1") and all(f.startswith("a") for f in choice.files)
    assert dicom.ingest(folder, "S1")["status"] == "ok"


def test_sequential_acquisitions_stay_one_series(tmp_path, truth):
    write_stack(tmp_path / "scan", truth, edit=lambda ds, k: setattr(ds, "AcquisitionNumber", k // 4 + 1))
    choice = dicom.choose_series(dicom.index_folder(tmp_path / "scan"))
    assert len(choice.candidates) == 1 and len(choice.files) == 25


@pytest.mark.parametrize(("signed", "intercept"), [(True, -1024.0), (False, -1024.0), (False, -2048.0), (True, 0.0)])
def test_signed_unsigned_and_intercepts_give_identical_hu(tmp_path, truth, signed, intercept):
    write_stack(tmp_path / "scan", truth, signed=signed, intercept=intercept)
    series = dicom.ingest(tmp_path / "scan", "S1")
    np.testing.assert_array_equal(dicom.read_volume(tmp_path / "scan", series).hu, truth)


def test_padding_value_and_out_of_field_values(tmp_path, truth):
    def pad(ds, k):
        stored = np.frombuffer(ds.PixelData, np.int16).reshape(ds.Rows, ds.Columns).copy()
        stored[0, :4] = -2000  # PixelPaddingValue
        stored[-1, -3:] = -2000 - 1024  # -3024 HU after intercept, outside the field of view
        ds.PixelData = stored.tobytes()
        ds["PixelPaddingValue"] = pydicom.DataElement(0x00280120, "SS", -2000)

    write_stack(tmp_path / "scan", truth, edit=pad)
    series = dicom.ingest(tmp_path / "scan", "S1")
    vol = dicom.read_volume(tmp_path / "scan", series)
    assert vol.padding is not None and vol.padding.sum() == 25 * 7
    assert (vol.hu[vol.padding] == -1024).all()
    np.testing.assert_array_equal(vol.hu[~vol.padding], truth[~vol.padding])
    assert vol.padding[:, 0, :4].all()  # row 0 is anterior: y index 0 after reorientation
    lean = dicom.read_volume(tmp_path / "scan", series, padding_mask=False)
    assert lean.padding is None
    np.testing.assert_array_equal(lean.hu, vol.hu)


def test_modality_lut_sequence_without_intercept(tmp_path, truth):
    def lut(ds, k):
        stored = np.frombuffer(ds.PixelData, np.int16)  # truth + 1024, all positive
        ds.PixelRepresentation = 0
        ds.PixelData = stored.astype(np.uint16).tobytes()
        del ds.RescaleIntercept, ds.RescaleSlope
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 16]
        item.ModalityLUTType = "US"
        item["LUTData"] = pydicom.DataElement(0x00283006, "OW", (2 * np.arange(4096)).astype(np.uint16).tobytes())
        ds.ModalityLUTSequence = Sequence([item])

    write_stack(tmp_path / "scan", truth, intercept=-1024.0, edit=lut)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["geometry"]["rescale"]["modality_lut_sequence"]
    np.testing.assert_array_equal(dicom.read_volume(tmp_path / "scan", series).hu, 2 * (truth + 1024))


def test_rle_and_jpeg2000_compressed(tmp_path):
    truth = truth_volume((25, 32, 40))  # the J2K encoder's 6 resolutions need at least 32 pixels a side

    def rle(ds, k):
        ds.compress(RLELossless, encoding_plugin="pydicom")

    def j2k(ds, k):
        ds.compress(JPEG2000Lossless)

    write_stack(tmp_path / "rle", truth, edit=rle)
    write_stack(tmp_path / "j2k", truth, edit=j2k)
    for name in ("rle", "j2k"):
        series = dicom.ingest(tmp_path / name, "S1")
        assert series["status"] == "ok", series["reasons"]
        np.testing.assert_array_equal(dicom.read_volume(tmp_path / name, series).hu, truth)
    assert "JPEG 2000" in dicom.ingest(tmp_path / "j2k", "S1")["geometry"]["transfer_syntax"][0]


def test_jpeg2000_codestream_unsigned_while_pixel_representation_signed(tmp_path):
    truth = truth_volume((25, 32, 40))

    def j2k_unsigned(ds, k):
        signed = np.frombuffer(ds.PixelData, np.int16).reshape(ds.Rows, ds.Columns)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.compress(JPEG2000Lossless, (signed.view(np.uint16) & 0x0FFF))  # 12-bit two's complement, unsigned
        ds.PixelRepresentation = 1  # the dataset says signed, the codestream unsigned

    write_stack(tmp_path / "scan", truth, intercept=0.0, edit=j2k_unsigned)
    series = dicom.ingest(tmp_path / "scan", "S1")
    np.testing.assert_array_equal(dicom.read_volume(tmp_path / "scan", series).hu, truth)


def test_undecodable_pixels_raise_input_error_naming_file(tmp_path, truth):
    def broken(ds, k):
        ds.compress(RLELossless, encoding_plugin="pydicom")
        if k == 3:
            ds.PixelData = ds.PixelData[:40] + bytes(len(ds.PixelData) - 40)

    write_stack(tmp_path / "scan", truth, edit=broken)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "ok"
    with pytest.raises(InputError, match=rf"^{named(tmp_path / 'scan', 'IM0003.dcm')}: "):
        dicom.read_volume(tmp_path / "scan", series)


def test_empty_folder_and_missing_folder(tmp_path):
    series = dicom.ingest(tmp_path, "S1")
    assert series["status"] == "excluded" and "No DICOM image" in series["reasons"][0]
    with pytest.raises(InputError, match="does not exist"):
        dicom.index_folder(tmp_path / "nope")


def test_bits_stored_12_signed_and_unsigned_with_overlay_bits(tmp_path, truth):
    def signed12(ds, k):
        ds.BitsStored, ds.HighBit = 12, 11
        stored = np.frombuffer(ds.PixelData, np.int16)
        ds.PixelData = (stored.view(np.uint16) & 0x0FFF).tobytes()  # not sign-extended above bit 11

    def unsigned12(ds, k):
        ds.BitsStored, ds.HighBit = 12, 11
        ds.PixelData = (np.frombuffer(ds.PixelData, np.uint16) | 0x8000).tobytes()  # bit 15 is not pixel data

    write_stack(tmp_path / "s", truth, intercept=0.0, edit=signed12)
    write_stack(tmp_path / "u", truth, signed=False, intercept=-1024.0, edit=unsigned12)
    for name in ("s", "u"):
        series = dicom.ingest(tmp_path / name, "S1")
        np.testing.assert_array_equal(dicom.read_volume(tmp_path / name, series).hu, truth)


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


def test_demo_writer_series_round_trip(tmp_path):
    from lungtrial.demo.dicomwrite import write_series

    rng = np.random.default_rng(1)
    hu = rng.integers(-1000, 1500, (22, 40, 36)).astype(np.int16)
    write_series(
        hu,
        (1.25, 0.8, 0.75),
        tmp_path,
        origin=(5.0, -7.0, 30.0),
        signed=False,
        padding_value=0,
        fov_diameter_mm=30.0,
        superior_first=False,
        patient={"PatientName": SECRET},
        file_names="hex",
        suffix="",
    )
    series = dicom.ingest(tmp_path, "S1")
    assert series["status"] == "ok", series["reasons"]
    no_identifiers(series)
    vol = dicom.read_volume(tmp_path, series)
    assert vol.spacing == pytest.approx((1.25, 0.8, 0.75))
    assert vol.origin == pytest.approx((5.0, -7.0, 30.0))
    assert vol.padding is not None and vol.padding[:, 0, 0].all() and not vol.padding[:, 20, 18].any()
    np.testing.assert_array_equal(vol.hu[~vol.padding], hu[~vol.padding])


def test_rescale_slope_other_than_one(tmp_path, truth):
    def half(ds, k):
        stored = np.frombuffer(ds.PixelData, np.int16).astype(np.int32)  # HU + 1024
        ds.PixelData = (2 * stored).astype(np.int16).tobytes()
        ds.RescaleSlope = 0.5

    write_stack(tmp_path / "scan", truth, edit=half)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["geometry"]["rescale"]["pairs"] == [[0.5, -1024.0]]
    np.testing.assert_array_equal(dicom.read_volume(tmp_path / "scan", series).hu, truth)


def _enhanced_ct(path, hu: np.ndarray, order: list[int], *, spacing=(2.5, 0.7, 0.7), origin=(-10.0, -20.0, -100.0)):
    """An Enhanced CT object holding the LPS-ordered volume ``hu`` with its frames in ``order``."""
    ds = new_ds(sop_class="1.2.840.10008.5.1.4.1.1.2.1")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.NumberOfFrames = len(order)
    shared = Dataset()
    orient, measures, rescale = Dataset(), Dataset(), Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [spacing[1], spacing[2]]
    measures.SliceThickness = spacing[0]
    rescale.RescaleIntercept, rescale.RescaleSlope, rescale.RescaleType = -1024, 1, "HU"
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PixelValueTransformationSequence = Sequence([rescale])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    items = []
    for z in order:
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [origin[0], origin[1], origin[2] + z * spacing[0]]
        item.PlanePositionSequence = Sequence([position])
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    set_pixels(ds, (hu[order].astype(np.int32) + 1024).reshape(-1, hu.shape[2]), intercept=None)
    ds.Rows, ds.Columns = hu.shape[1:]
    ds.save_as(path, enforce_file_format=True)
    return ds


@pytest.mark.parametrize("compressed", [False, True], ids=["native", "rle"])
def test_enhanced_ct_frames_are_ordered_by_position(tmp_path, truth, compressed):
    order = random.Random(5).sample(range(truth.shape[0]), truth.shape[0])
    ds = _enhanced_ct(tmp_path / "enhanced.dcm", truth, order)
    if compressed:
        ds.compress(RLELossless, encoding_plugin="pydicom")
        ds.save_as(tmp_path / "enhanced.dcm")
    index = dicom.index_folder(tmp_path)
    assert len(index) == 25 and (index["file"] == "enhanced.dcm").all()
    series = dicom.ingest(tmp_path, "S1")
    assert series["status"] == "ok", series["reasons"]
    assert series["files"][0] == f"file 1 frame {order.index(0) + 1}"
    vol = dicom.read_volume(tmp_path, series)
    np.testing.assert_array_equal(vol.hu, truth)
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.7))


def test_indexed_read_skips_the_second_header_parse_and_rechecks_files(tmp_path, truth, read_both_ways, monkeypatch):
    read_volume = read_both_ways  # the plain function
    folder = tmp_path / "scan"
    write_stack(folder, truth, row=(-1, 0, 0), signed=False, edit=lambda ds, k: setattr(ds, "PixelPaddingValue", 0))
    index = dicom.index_folder(folder)
    assert index["pixel_offset"].notna().all() and (index["file_size"] > index["pixel_offset"]).all()
    series = dicom.ingest(folder, "S01-D00", index=index)
    assert series == dicom.ingest(folder, "S01-D00")
    parsed = []
    original = dicom._volume._read_frames
    monkeypatch.setattr(dicom._volume, "_read_frames", lambda *a: parsed.append(a[1]) or original(*a))
    np.testing.assert_array_equal(read_volume(folder, series, index=index).hu, truth)
    assert parsed == []
    # a file rewritten after indexing (other size) is read through pydicom again, with its own checks
    victim = index.set_index("label").at[series["files"][3], "path"]
    ds = pydicom.dcmread(folder / victim)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(folder / victim)
    with pytest.raises(InputError, match=f"^{series['files'][3]}: "):
        read_volume(folder, series, index=index)
    assert parsed == [series["files"][3]]


def test_odd_pixel_modules_are_not_read_directly(tmp_path, truth):
    def edit(ds, k):
        if k == 1:
            ds.HighBit = 14  # stored bits not at the bottom of the word
        if k == 2:
            ds.BitsAllocated = 8
        if k == 3:
            ds.PixelPaddingValue = [0, 1]  # two values: left to the general reader (and its error)
        if k == 4:
            ds.SharedFunctionalGroupsSequence = Sequence([Dataset()])

    write_stack(tmp_path / "scan", truth, edit=edit)
    index = dicom.index_folder(tmp_path / "scan")
    direct = index.set_index("path")["pixel_offset"].notna()
    assert not direct.iloc[1:5].any() and direct.iloc[[0, *range(5, len(direct))]].all()


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


def test_file_numbers_resolve_through_the_index_when_a_file_gave_no_row(tmp_path, truth):
    """Labels number the folder's listing; a file without an index row must not shift the files after it."""
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    index = dicom.index_folder(folder)
    labels = sorted(index["label"], key=lambda s: int(s.split()[1]))
    dropped = index[index["label"] != labels[0]]  # as if the first file had given no row
    full, partial = dicom._volume._resolver(folder, index), dicom._volume._resolver(folder, dropped)
    for label in labels[1:]:
        assert partial(label) == full(label)


@pytest.mark.parametrize(
    ("tag", "value", "what"),
    [("PatientID", "OTHER-ID-456", "2 patients (PatientID differs)"), ("StudyInstanceUID", "1.2.3.4.5", "2 studies")],
)
def test_two_patients_or_studies_in_one_folder_exclude_the_scan(tmp_path, truth, tag, value, what):
    """Another patient's (or another visit's) series copied into the scan's folder is not chosen silently."""
    write_stack(tmp_path / "scan", truth, edit=lambda ds, k: setattr(ds, "StudyInstanceUID", "1.2.3.4.4"))
    names = [f"zz{k:04d}.dcm" for k in range(truth.shape[0])]
    write_stack(
        tmp_path / "scan", truth, spacing=(2.0, 0.7, 0.7), series_uid="1.2.826.0.1.3680043.2.9", names=names,
        edit=lambda ds, k: setattr(ds, tag, value),
    )
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "excluded"
    assert f"images of {what}" in series["reasons"][0]
    assert value not in json.dumps(series)
    no_identifiers(series)


def test_patient_key_tells_one_patient_from_another_and_shows_no_id(tmp_path, truth):
    """Keys of the chosen series' PatientID: equal for one patient, different for two, never the ID itself."""
    write_stack(tmp_path / "a", truth)
    write_stack(tmp_path / "b", truth, series_uid="1.2.826.0.1.3680043.2.7")
    write_stack(tmp_path / "c", truth, edit=lambda ds, k: setattr(ds, "PatientID", "OTHER-ID-456"))
    key = {name: dicom.patient_key(tmp_path / name, dicom.ingest(tmp_path / name, name)) for name in "abc"}
    assert key["a"] == key["b"] != key["c"] and None not in key.values()
    assert all("SECRET" not in k and "OTHER" not in k and "123" not in k for k in key.values())
    assert dicom.patient_key(tmp_path / "a", {"files": []}) is None


@pytest.mark.parametrize(
    ("kernel", "shown"),
    [("B30f", "B30f"), ("Br40d\\3", "Br40d\\3"), ("STANDARD", "STANDARD"), ("FC13-H", "FC13-H"), ("YC", "YC")]
    + [("HD LUNG", "HD LUNG"), ("B_SOFT_B", "B_SOFT_B"), ("Body Standard", "Body Standard"), ("IMR1", "IMR1")]
    + [(v, "not shown (free text)") for v in ("DOEJOHN450101", "DOE^JOHN", "19650101", "12345678", "B30f\\4711")],
)
def test_kernel_free_text_is_shown_only_when_it_reads_as_a_kernel_name(tmp_path, truth, kernel, shown):
    write_stack(tmp_path / "scan", truth, edit=lambda ds, k: setattr(ds, "ConvolutionKernel", kernel))
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "ok"
    assert series["geometry"]["kernel"] == shown and [c["kernel"] for c in series["candidates"]] == [shown]
    assert f"kernel {shown})" in series["reason"]
    if shown != kernel:
        assert kernel.split("\\")[-1] not in json.dumps(series)
        listed = dicom.ingest(tmp_path / "scan", "S1", prefer_kernels=[kernel.lower()])
        assert listed["geometry"]["kernel"] == kernel  # a name the user listed is shown


def test_a_file_without_patient_id_or_another_studys_localizer_does_not_mix_a_folder(tmp_path, truth):
    """Only the qualifying series count, and only images that carry the tag."""
    write_stack(tmp_path / "scan", truth, edit=lambda ds, k: delattr(ds, "PatientID") if k == 3 else None)
    names = [f"zz{k:04d}.dcm" for k in range(3)]
    write_stack(  # three slices of another study: no qualifying series
        tmp_path / "scan", truth[:3], series_uid="1.2.826.0.1.3680043.2.9", names=names,
        edit=lambda ds, k: setattr(ds, "StudyInstanceUID", "1.2.3.4.5"),
    )
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "ok", series["reasons"]
