"""Tests of the demo-trial generator (lungtrial.demo): design, phantom, DICOM writer, clinical sheets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from lungtrial.demo import design, generate_trial, write_clinical, write_scan
from lungtrial.demo.clinical import LAB_UNITS, labs_table
from lungtrial.demo.design import SUBJECT_COLUMNS
from lungtrial.demo.dicomwrite import write_series
from lungtrial.demo.phantom import Lesions, PhantomParams, make_chest

TINY_SPACING = (5.0, 4.0, 4.0)
TINY_SHAPE = (54, 96, 96)


def _read_series(folder: Path) -> dict[str, list[pydicom.Dataset]]:
    series: dict[str, list[pydicom.Dataset]] = {}
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    return series


def _hu(dss: list[pydicom.Dataset]) -> np.ndarray:
    dss = sorted(dss, key=lambda d: float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])


# ---------------------------------------------------------------------------------------------------- design
def test_design_is_deterministic_and_follows_the_contract():
    a, b = design(n_per_arm=3, seed=7), design(n_per_arm=3, seed=7)
    pd.testing.assert_frame_equal(a.subjects, b.subjects)
    pd.testing.assert_frame_equal(a.scans, b.scans)
    pd.testing.assert_frame_equal(a.courses, b.courses)
    assert not a.subjects.equals(design(n_per_arm=3, seed=8).subjects)
    assert list(a.subjects.columns) == SUBJECT_COLUMNS
    assert a.subjects["subject_id"].tolist() == [f"P{i:02d}" for i in range(1, 7)]
    assert sorted(a.subjects["arm"].value_counts().tolist()) == [3, 3]
    assert {"scan_id", "subject_id", "scan_date", "nominal_day"} <= set(a.scans.columns)
    assert len(a.scans) == 6 * 4
    assert a.scans["scan_id"].str.fullmatch(r"P\d\d-D(00|07|14|28)").all()
    jitter = a.scans["study_day"] - a.scans["nominal_day"]
    assert jitter.abs().max() <= 2
    for col in ("admission_date", "day0_date", "discharge_date"):
        assert a.subjects[col].str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    assert (a.subjects["admission_date"] <= a.subjects["day0_date"]).all()
    assert (a.subjects["day0_date"] < a.subjects["discharge_date"]).all()
    assert set(a.subjects["oxygen_support"]) <= {"none", "low-flow", "high-flow"}
    assert set(a.subjects["severity"]) <= {"moderate", "severe"}
    assert not a.subjects.loc[a.subjects["arm"] == "control", "infusion_adverse_event"].any()


def test_default_trial_favours_uc_msc_on_average():
    s = design().subjects
    assert len(s) == 18
    stay = pd.to_datetime(s["discharge_date"]) - pd.to_datetime(s["day0_date"])
    by_arm = s.assign(stay=stay.dt.days).groupby("arm")[["stay", "days_to_symptom_resolution"]].mean()
    assert (by_arm.loc["UC-MSC"] < by_arm.loc["control"]).all()
    # not deterministic per arm: the arms overlap
    res = s.groupby("arm")["days_to_symptom_resolution"]
    assert res.max()["UC-MSC"] > res.min()["control"]


def test_design_and_package_import_are_light():
    code = (
        "import sys, lungtrial.demo, lungtrial.demo.design;"
        "print(sorted(m for m in ('pydicom', 'scipy', 'SimpleITK', 'matplotlib', 'skimage') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------------- phantom
@pytest.fixture(scope="module")
def chest():
    params = PhantomParams(anatomy_seed=1)
    return params, *make_chest(params, TINY_SPACING, TINY_SHAPE, Lesions(12.0, 4.0, seed=2), seed=3)


def test_make_chest_is_deterministic(chest):
    params, hu, truth = chest
    hu2, truth2 = make_chest(params, TINY_SPACING, TINY_SHAPE, Lesions(12.0, 4.0, seed=2), seed=3)
    np.testing.assert_array_equal(hu, hu2)
    np.testing.assert_array_equal(truth.lungs, truth2.lungs)
    np.testing.assert_array_equal(truth.lesions, truth2.lesions)
    hu3, _ = make_chest(params, TINY_SPACING, TINY_SHAPE, Lesions(12.0, 4.0, seed=2), seed=4)
    assert not np.array_equal(hu, hu3)  # other noise


def test_make_chest_anatomy_and_truth(chest):
    params, hu, truth = chest
    assert hu.shape == TINY_SHAPE and hu.dtype == np.float32
    assert truth.lungs.shape == TINY_SHAPE and truth.lesions.shape == TINY_SHAPE
    # right lung (label 1) at low x (LPS: x to the patient's left)
    xs = np.arange(TINY_SHAPE[2])
    x_right = (truth.lungs == 1).sum(axis=(0, 1)) @ xs / (truth.lungs == 1).sum()
    x_left = (truth.lungs == 2).sum(axis=(0, 1)) @ xs / (truth.lungs == 2).sum()
    assert x_right < TINY_SHAPE[2] / 2 < x_left
    # lesions lie in the lungs; volumes follow from the masks and the spacing
    assert not np.any((truth.lesions > 0) & (truth.lungs == 0))
    s = truth.summary()
    voxel_ml = np.prod(TINY_SPACING) / 1000
    assert s["lung_volume_ml"] == pytest.approx(np.count_nonzero(truth.lungs) * voxel_ml)
    assert s["ground_glass_ml"] == pytest.approx(np.count_nonzero(truth.lesions == 1) * voxel_ml)
    assert s["opacity_ml"] == pytest.approx(s["ground_glass_ml"] + s["consolidation_ml"])
    assert s["pct_opacity"] == pytest.approx(100 * s["opacity_ml"] / s["lung_volume_ml"])
    assert 2500 < s["lung_volume_ml"] < 6500
    assert 8 < s["pct_opacity"] < 24 and 1 < s["pct_consolidation"] < 8
    # HU: air outside, lung parenchyma near lung_hu, lesions denser, noise present
    assert np.median(hu[:, :3, :]) == pytest.approx(params.air_hu, abs=30)
    lung_core = (truth.lungs > 0) & (truth.lesions == 0)
    assert np.median(hu[lung_core]) == pytest.approx(params.lung_hu, abs=40)
    assert np.median(hu[truth.lesions == 1]) > -720
    assert np.median(hu[truth.lesions == 2]) > -250
    # top slice above the apices has no lung, the bottom slices hold the diaphragm and abdomen
    assert truth.lungs[-1].sum() == 0 and truth.lungs[0].sum() < truth.lungs[TINY_SHAPE[0] // 2].sum() / 3


def test_make_chest_parameters_vary_the_image():
    sp, shape = (6.0, 5.0, 5.0), (45, 72, 72)
    base, t0 = make_chest(PhantomParams(noise_hu=0.0), sp, shape)
    assert not t0.lesions.any()
    dense, _ = make_chest(PhantomParams(noise_hu=0.0, lung_hu=-780.0), sp, shape)
    core = t0.lungs > 0
    assert np.median(dense[core]) - np.median(base[core]) == pytest.approx(70, abs=10)
    small, t_small = make_chest(PhantomParams(noise_hu=0.0, lung_width_mm=220, lung_height_mm=200), sp, shape)
    assert t_small.summary()["lung_volume_ml"] < 0.85 * t0.summary()["lung_volume_ml"]
    rotated, t_rot = make_chest(PhantomParams(noise_hu=0.0, rotation_deg=5.0, offset_mm=(10.0, 0.0)), sp, shape)
    assert not np.array_equal(t_rot.lungs, t0.lungs)
    assert t_rot.summary()["lung_volume_ml"] == pytest.approx(t0.summary()["lung_volume_ml"], rel=0.05)
    noisy, _ = make_chest(PhantomParams(noise_hu=25.0), sp, shape)
    assert np.std(noisy[:, :3, :]) == pytest.approx(25.0, rel=0.25)
    # a wider point-spread function leaves more voxels between air and soft tissue (partial volume)
    sharp, _ = make_chest(PhantomParams(noise_hu=0.0, psf_sigma_mm=0.1), sp, shape)
    blurred, _ = make_chest(PhantomParams(noise_hu=0.0, psf_sigma_mm=3.0), sp, shape)
    def between(img):
        return np.count_nonzero((img > -700) & (img < -200))

    assert between(blurred) > 1.5 * between(sharp)
    # overlapping reconstruction: slices thicker than their spacing
    thick, t_thick = make_chest(PhantomParams(noise_hu=0.0), sp, shape, thickness_mm=12.0)
    assert t_thick.thickness_mm == 12.0 and np.array_equal(t_thick.lungs, t0.lungs)
    assert not np.array_equal(thick, base)


def test_make_chest_from_extent():
    hu, truth = make_chest(PhantomParams(), (10.0, 8.0, 8.0), extent_mm=(280.0, 360.0, 360.0))
    assert hu.shape == truth.lungs.shape == (28, 45, 45)
    with pytest.raises(ValueError):
        make_chest(PhantomParams(), (10.0, 8.0, 8.0))


def test_lesion_burden_grows_in_place():
    sp, shape = (6.0, 5.0, 5.0), (45, 72, 72)
    p = PhantomParams(noise_hu=0.0)
    _, small = make_chest(p, sp, shape, Lesions(3.0, 0.5, seed=9))
    _, large = make_chest(p, sp, shape, Lesions(20.0, 5.0, seed=9))
    assert small.summary()["pct_opacity"] < large.summary()["pct_opacity"]
    inside = (small.lesions > 0) & (large.lesions == 0)
    assert inside.sum() <= 0.02 * (small.lesions > 0).sum()


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


# ------------------------------------------------------------------------------------------------ write_scan
@pytest.fixture(scope="module")
def trial():
    return design(n_per_arm=3, seed=20200)


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


def test_identifiers_differ_between_subjects(trial):
    c = trial.courses
    for col in ("patient_name", "patient_id", "institution", "referring_physician"):
        assert c[col].is_unique
    big = design(n_per_arm=600).courses  # more subjects than name combinations
    for col in ("patient_name", "patient_id", "referring_physician"):
        assert big[col].is_unique


# ----------------------------------------------------------------------------------------------- clinical
def test_labs_have_the_listed_mess():
    labs = labs_table(design())
    assert list(labs.columns) == ["subject_id", "datetime", "analyte", "value", "unit"]
    assert labs["datetime"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").all()
    assert set(labs["analyte"]) == set(LAB_UNITS)
    allowed = {(a, u) for a, u in LAB_UNITS.items()} | {("Lymphocyte count", "10*9/L"), ("CRP", "mg/dL")}
    assert set(zip(labs["analyte"], labs["unit"])) <= allowed
    assert 1 <= (labs["unit"] == "10*9/L").sum() <= 5
    assert labs.loc[labs["unit"] == "mg/dL", "subject_id"].nunique() == 1
    values = labs["value"].fillna("")
    assert (values == "").sum() == 1
    assert (values == ">1000").sum() == 1
    assert ((labs["analyte"] == "IL-6") & (values == "<1.5")).sum() >= 2
    assert ((labs["analyte"] == "IL-10") & (values == "<0.5")).sum() >= 2
    numeric = pd.to_numeric(values.where(~values.str.match(r"^[<>]?$|^[<>]")), errors="coerce")
    assert numeric.notna().sum() == len(labs) - (values.str.match(r"^[<>]") | (values == "")).sum()
    # labs track the opacity course: lymphocytes low and CRP high when opacity peaks (about day 7)
    d = design()
    day0 = pd.to_datetime(labs["subject_id"].map(d.subjects.set_index("subject_id")["day0_date"]))
    day = (pd.to_datetime(labs["datetime"]).dt.normalize() - day0).dt.days
    lab = labs.assign(day=day, num=numeric)
    lym = lab[lab["analyte"] == "Lymphocyte count"].groupby("day")["num"].median()
    assert lym.loc[6:8].mean() < lym.loc[27:29].mean()
    igg = lab[lab["analyte"] == "IgG"].groupby("day")["num"].median()
    assert igg.loc[-1:0].mean() < igg.loc[27:29].mean()


def test_write_clinical_sheets(tmp_path):
    d = design(n_per_arm=4, seed=3)
    write_clinical(d, tmp_path)
    subjects = pd.read_csv(tmp_path / "subjects.csv", dtype=str, keep_default_na=False)
    # the design's columns, then the outcomes the analysis plan reads besides them
    plan_columns = ["low_flow_oxygen", "high_flow_oxygen", "fatigue", "days_to_death"]
    assert list(subjects.columns) == SUBJECT_COLUMNS + plan_columns
    for col in ("low_flow_oxygen", "high_flow_oxygen", "fatigue"):
        assert set(subjects[col]) <= {"true", "false"}
    highest = subjects.set_index("subject_id")["oxygen_support"]
    assert set(highest) <= {"none", "low-flow", "high-flow", "mechanical ventilation"}
    ventilated = subjects.loc[subjects["mechanical_ventilation"] == "true", "subject_id"]
    assert (highest[ventilated] == "mechanical ventilation").all()
    assert (subjects["days_to_death"] == "").all() and subjects["discharge_date"].ne("").all()  # all discharged alive
    for col in ("mechanical_ventilation", "fever", "cough", "dyspnoea", "infusion_adverse_event"):
        assert set(subjects[col]) <= {"true", "false"}
    ae = pd.read_csv(tmp_path / "adverse_events.csv", dtype=str)
    assert list(ae.columns) == ["subject_id", "day", "term", "grade", "related_to_infusion"]
    assert len(ae) >= 1 and ae["grade"].astype(int).between(1, 5).all()
    assert set(ae["related_to_infusion"]) <= {"true", "false"}
    related = set(ae.loc[ae["related_to_infusion"] == "true", "subject_id"])
    assert related == set(subjects.loc[subjects["infusion_adverse_event"] == "true", "subject_id"])
    labs = pd.read_csv(tmp_path / "labs.csv", dtype=str, keep_default_na=False)
    assert (labs["value"] == "").sum() == 1


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
