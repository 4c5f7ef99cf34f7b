"""Tests for lungtrial.demo.dicomwrite: the DICOM writer, one scan and the whole tiny trial."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from lungtrial.demo import generate_trial, write_scan
from lungtrial.demo.dicomwrite import write_series


def _read_series(folder: Path) -> dict[str, list[pydicom.Dataset]]:
    series: dict[str, list[pydicom.Dataset]] = {}
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    return series


def _hu(dss: list[pydicom.Dataset]) -> np.ndarray:
    dss = sorted(dss, key=lambda d: float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])


# ---------------------------------------------------------------------------------------------- DICOM writer
@pytest.mark.parametrize(
    "intercept, signed, padding",
    [(-1024.0, False, None), (-1024.0, True, -2000), (-1000.0, False, None), (0.0, True, -2000)],
)
def test_write_series_round_trip(tmp_path, intercept, signed, padding):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1500, size=(6, 20, 24)).astype(np.float32)
    spacing, origin = (2.5, 0.8, 0.7), (-10.0, -20.0, 30.0)
    files = write_series(hu, spacing, tmp_path, origin=origin, thickness_mm=3.0, intercept=intercept,
                         signed=signed, padding_value=padding, fov_diameter_mm=14.0, superior_first=False,
                         patient={"PatientName": "Doe^Jane", "PatientID": "X1"}, uid_seed=("t", intercept))
    assert len(files) == 6 and len(list(tmp_path.iterdir())) == 6
    assert [f.name for f in files] != sorted(f.name for f in files)  # names are not in slice order
    dss = [pydicom.dcmread(f) for f in files]
    for k, ds in enumerate(dss):
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage
        assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx([-10.0, -20.0, 30.0 + 2.5 * k])
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.8, 0.7])
        assert float(ds.SliceThickness) == 3.0 and float(ds.SpacingBetweenSlices) == 2.5
        assert float(ds.SliceLocation) == pytest.approx(30.0 + 2.5 * k)
        assert ds.InstanceNumber == k + 1
        assert ds.PixelRepresentation == int(signed)
        assert float(ds.RescaleIntercept) == intercept and float(ds.RescaleSlope) == 1.0
        assert pydicom.uid.UID(ds.SOPInstanceUID).is_valid
    back = _hu(dss)
    expected = np.clip(hu, intercept if not signed else -np.inf, None)
    if padding is None:
        np.testing.assert_array_equal(back, expected)
        assert "PixelPaddingValue" not in dss[0]
    else:
        stored = np.stack([d.pixel_array for d in dss])
        yy, xx = np.mgrid[:20, :24]
        outside = ((yy - 9.5) * 0.8) ** 2 + ((xx - 11.5) * 0.7) ** 2 > 7.0**2
        assert dss[0].PixelPaddingValue == padding
        assert (stored[:, outside] == padding).all()
        np.testing.assert_array_equal(back[:, ~outside], expected[:, ~outside])


def test_write_series_is_read_by_gdcm(tmp_path):
    import SimpleITK as sitk

    hu = np.random.default_rng(2).integers(-1000, 1000, size=(5, 12, 10)).astype(np.float32)
    write_series(hu, (3.0, 0.9, 0.8), tmp_path, origin=(1.0, 2.0, -50.0), file_names="instance", suffix="")
    reader = sitk.ImageSeriesReader()
    (series_id,) = reader.GetGDCMSeriesIDs(str(tmp_path))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path), series_id))
    img = reader.Execute()
    assert img.GetSpacing() == pytest.approx((0.8, 0.9, 3.0))
    assert img.GetOrigin() == pytest.approx((1.0, 2.0, -50.0))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), hu)


def test_write_series_is_deterministic(tmp_path):
    hu = np.zeros((3, 8, 8), np.float32)
    a = write_series(hu, (1, 1, 1), tmp_path / "a", uid_seed="s")
    b = write_series(hu, (1, 1, 1), tmp_path / "b", uid_seed="s")
    assert [f.name for f in a] == [f.name for f in b]
    assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b]


def _pick(trial, **flags) -> str:
    scans = trial.scans
    sel = np.ones(len(scans), bool)
    for k, v in flags.items():
        sel &= scans[k].to_numpy() == v
    assert sel.any(), f"the test design has no scan with {flags}"
    return str(scans.loc[sel, "scan_id"].iloc[0])


@pytest.mark.parametrize("flags", [{"thick_series": True, "localizer": True}, {"thick_series": False,
                                                                               "localizer": False}])
def test_write_scan_tiny(tmp_path, trial, flags):
    import SimpleITK as sitk

    flags = {k: v for k, v in flags.items() if (trial.scans[k] == v).any()}
    scan_id = _pick(trial, **flags)
    row = trial.scans.set_index("scan_id").loc[scan_id]
    rec = write_scan(trial, scan_id, tmp_path / "dicom", tmp_path / "truth", size="tiny")
    on_disk = json.loads((tmp_path / "truth" / f"{scan_id}.json").read_text())
    assert on_disk == json.loads(json.dumps(rec))
    for key in ("lung_volume_ml", "ground_glass_ml", "consolidation_ml", "opacity_ml", "pct_opacity",
                "pct_ground_glass", "pct_consolidation", "slice_thickness_mm", "planted_identifiers"):
        assert key in rec
    series = _read_series(tmp_path / "dicom")
    assert len(series) == rec["series"] == 1 + rec["thick_series"] + bool(row["localizer"])
    axial = [s for s in series.values() if "LOCALIZER" not in s[0].ImageType]
    main = min(axial, key=lambda s: float(s[0].SliceThickness))
    assert float(main[0].SliceThickness) == rec["slice_thickness_mm"]
    assert len({d.StudyInstanceUID for s in series.values() for d in s}) == 1
    if rec["thick_series"]:
        assert sorted(float(s[0].SliceThickness) for s in axial)[-1] == 5.0
    if row["localizer"]:
        (loc,) = [s for s in series.values() if "LOCALIZER" in s[0].ImageType]
        assert len(loc) == 1 and list(loc[0].ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    # identifiers are planted and listed
    ds = main[0]
    planted = set(rec["planted_identifiers"])
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
               "ReferringPhysicianName", "StudyInstanceUID", "SeriesInstanceUID"):
        assert str(ds.data_element(kw).value) in planted
    # truth masks on the main grid; volumes consistent with them
    lungs = sitk.ReadImage(str(tmp_path / "truth" / f"{scan_id}_lungs.nii.gz"))
    lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "truth" / f"{scan_id}_lesions.nii.gz")))
    arr = sitk.GetArrayFromImage(lungs)
    assert arr.shape == (len(main), main[0].Rows, main[0].Columns)
    assert lungs.GetOrigin() == pytest.approx([float(v) for v in sorted(
        main, key=lambda d: float(d.ImagePositionPatient[2]))[0].ImagePositionPatient], abs=1e-3)
    voxel_ml = np.prod(lungs.GetSpacing()) / 1000
    assert rec["lung_volume_ml"] == pytest.approx(np.count_nonzero(arr) * voxel_ml, abs=0.01)
    assert rec["opacity_ml"] == pytest.approx(np.count_nonzero(lesions) * voxel_ml, abs=0.01)
    # the images carry the anatomy: lung voxels are mostly aerated
    hu = _hu(main)
    assert np.median(hu[(arr > 0) & (lesions == 0)]) < -700


def test_write_scan_is_deterministic(tmp_path, trial):
    scan_id = trial.scans["scan_id"].iloc[1]
    write_scan(trial, scan_id, tmp_path / "a", tmp_path / "ta", size="tiny")
    write_scan(trial, scan_id, tmp_path / "b", tmp_path / "tb", size="tiny")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()
    assert (tmp_path / "ta" / f"{scan_id}.json").read_text() == (tmp_path / "tb" / f"{scan_id}.json").read_text()
    with pytest.raises(FileExistsError):  # never mixes with files already there
        write_scan(trial, scan_id, tmp_path / "a", tmp_path / "ta", size="tiny")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "ta", "tb"]  # no temporary folder left


def test_generate_trial_tiny(tmp_path):
    d = generate_trial(tmp_path, size="tiny", n_per_arm=1, timepoints=(0, 14))
    scans = pd.read_csv(tmp_path / "scans.csv")
    assert list(scans.columns) == ["scan_id", "subject_id", "scan_date", "nominal_day", "dicom_dir"]
    assert len(scans) == 4 == len(d.scans)
    for scan_id, rel in zip(scans["scan_id"], scans["dicom_dir"]):
        assert not Path(rel).is_absolute()
        assert any((tmp_path / rel).iterdir())
        assert (tmp_path / "truth" / f"{scan_id}.json").exists()
    for name in ("subjects.csv", "labs.csv", "adverse_events.csv"):
        assert (tmp_path / name).exists()
    with pytest.raises(FileExistsError):
        generate_trial(tmp_path, size="tiny", n_per_arm=1, timepoints=(0,))
