"""The change-map orchestration (lungtrial.imaging.change.compare_volumes / compare_scans) on tiny synthetic
volumes: a follow-up shifted against its baseline, one lesion resolved, one new, one grown into consolidation; and
the change labels of a hand-built pair (change_labels, change_volumes, write_change_map, write_colour_table)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from lungtrial.errors import InputError
from lungtrial.imaging import change

from scan_grid import ORIGIN


SPACING = (3.0, 3.0, 3.0)
SHAPE = (40, 48, 64)


def _ball(centre, radius_mm):
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij")
    cz, cy, cx = centre
    return (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 < radius_mm**2


def _scan(lesions: dict, shift_mm: float = 0.0, seed: int = 1):
    """A tiny chest (two ellipsoid lungs with vessel-like texture in soft tissue) shifted by ``shift_mm`` along x
    (through its origin), with lesions {name: (centre mm, radius mm, class 1 or 2)}; CT, lungs, opacity."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij")
    lungs = np.zeros(SHAPE, np.uint8)
    for label, cx in ((1, 55.0), (2, 137.0)):
        lungs[((z - 60) / 48) ** 2 + ((y - 72) / 50) ** 2 + ((x - cx) / 34) ** 2 < 1] = label
    texture = ndimage.gaussian_filter(np.random.default_rng(7).standard_normal(SHAPE), 1.0)
    texture /= texture.std()
    hu = np.where(lungs > 0, -860.0 + np.clip(texture - 1.0, 0, None) * 400.0, 40.0)
    opacity = np.zeros(SHAPE, np.uint8)
    for centre, radius, cls in lesions.values():
        ball = _ball(centre, radius) & (lungs > 0)
        hu[ball] = -500.0 if cls == 1 else 20.0
        opacity[ball] = cls
    hu += rng.normal(0, 8, SHAPE)
    ct = SimpleNamespace(
        hu=np.rint(hu).astype(np.int16), spacing=SPACING, origin=(shift_mm, 0.0, 0.0), direction=np.eye(3)
    )
    return ct, lungs, opacity


BASE_LESIONS = {"resolving": ((60, 60, 50), 12, 1), "growing": ((60, 80, 140), 12, 1)}
FOLLOW_LESIONS = {"growing": ((60, 80, 140), 12, 2), "new": ((80, 90, 60), 10, 1)}
FAST = {"demons_iterations": (10, 5), "affine_iterations": 50, "grid_mm": 3.0, "min_dice": 0.8}


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pair")
    base = _scan(BASE_LESIONS)
    follow = _scan(FOLLOW_LESIONS, shift_mm=6.0, seed=2)
    result = change.compare_volumes(*base, *follow, out, ids=("S1-D00", "S1-D07"), registration=FAST, threads=1)
    return out, result


def test_pair_files_and_volumes(pair_dir):
    out, result = pair_dir
    assert result["status"] == "ok", result["reason"]
    assert (out / "transform" / "affine.tfm").is_file() and (out / "transform" / "deformable.h5").is_file()
    labels = np.asarray(nib.load(out / "map" / "change.nii.gz").dataobj).T
    assert labels.shape == SHAPE and labels.max() <= 7
    assert "resolved" in (out / "map" / "change_colours.txt").read_text()
    table = pd.read_csv(out / "volumes.csv")
    assert table["region"].iloc[0] == "whole_lung" and len(table) == 7
    whole = table.iloc[0]
    voxel_ml = np.prod(SPACING) / 1000
    lungs = _scan({})[1]
    for name, centre_radius in (("resolved", BASE_LESIONS["resolving"]), ("new", FOLLOW_LESIONS["new"])):
        truth = np.count_nonzero(_ball(*centre_radius[:2]) & (lungs > 0)) * voxel_ml
        assert whole[f"{name}_ml"] == pytest.approx(truth, rel=0.25, abs=2.0), name
    grown = np.count_nonzero(_ball(*BASE_LESIONS["growing"][:2]) & (lungs > 0)) * voxel_ml
    assert whole["progressed_ml"] == pytest.approx(grown, rel=0.25, abs=2.0)
    # regions add up to the whole lung
    assert table.iloc[1:]["new_ml"].sum() == pytest.approx(whole["new_ml"])
    qc = json.loads((out / "qc.json").read_text())
    assert qc["follow_up"] == "S1-D07" and qc["qc"]["dice"] > 0.9 and not qc["qc"]["failed"]
    preview = np.load(out / "preview.npz")
    assert preview["base_axial"].shape == SHAPE[1:] and preview["change_coronal"].shape == (SHAPE[0], SHAPE[2])
    # the picture's follow-up is the follow-up registered onto the baseline grid, the change colours' plane: the
    # saved transform applied to it, not its own slice
    from lungtrial.imaging.registration import Grid, load_transform, warp

    z, y = preview["planes"]
    follow = _scan(FOLLOW_LESIONS, shift_mm=6.0, seed=2)[0]
    moving = Grid.of(follow.hu, follow.spacing, follow.origin, follow.direction)
    fixed = Grid.of(follow.hu, SPACING)
    registered = warp(follow.hu, moving, fixed, load_transform(out / "transform"), default=-1024)
    np.testing.assert_array_equal(preview["follow_axial"], registered[z])
    np.testing.assert_array_equal(preview["follow_coronal"], registered[:, y])
    assert not np.array_equal(preview["follow_axial"], follow.hu[z])


def test_failed_registration_keeps_no_number(tmp_path):
    base = _scan(BASE_LESIONS)
    follow = _scan(FOLLOW_LESIONS, shift_mm=6.0, seed=2)
    result = change.compare_volumes(
        *base, *follow, tmp_path, registration={**FAST, "min_dice": 1.01}, threads=1
    )
    assert result["status"] == "failed" and "Dice" in result["reason"]
    table = pd.read_csv(tmp_path / "volumes.csv")
    assert table["resolved_ml"].isna().all() and (table["status"] == "failed").all()
    assert (tmp_path / "map" / "change.nii.gz").is_file()  # kept for inspection


@pytest.mark.parametrize(
    "which, status, words",
    [("baseline", "excluded", "baseline scan A excluded: too few slices"), ("follow", "excluded", "follow-up scan B"),
     ("none", "excluded", "no baseline"), ("self", "baseline", "is the subject's baseline")],
)
def test_not_compared_pairs_give_a_row_with_the_reason(tmp_path, which, status, words):
    ok = {"status": "ok"}
    bad = {"status": "excluded", "reasons": ["too few slices"]}
    base = {"scan_id": "A", "series": bad if which == "baseline" else ok, "folder": None, "masks": None}
    follow = {"scan_id": "B", "series": bad if which == "follow" else ok, "folder": None, "masks": None}
    if which == "none":
        base = None
    if which == "self":
        base = follow
    result = change.compare_scans(base, follow, tmp_path)
    assert result["status"] == status and words in result["reason"]
    table = pd.read_csv(tmp_path / "volumes.csv")
    assert len(table) == 7 and table["new_ml"].isna().all() and (table["status"] == status).all()
    assert (tmp_path / "transform").is_dir() and not any((tmp_path / "map").iterdir())


def test_baseline_is_earliest_measured_and_options():
    assert change.choose_baseline([{"status": "excluded"}, {"status": "ok"}, {"status": "ok"}]) == 1
    assert change.choose_baseline([{"status": "excluded"}]) is None
    assert change.registration_kwargs({"enabled": True, "demons_iterations": [5, 3], "seed": 1}) == {
        "demons_iterations": (5, 3),
        "seed": 1,
    }


def test_patient_picture_has_no_white_space_between_rows(pair_dir):
    """Rows as tall as their images: between the first and the last row of pictures no band of white."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out, result = pair_dir
    with np.load(out / "preview.npz") as npz:
        preview = {k: npz[k] for k in npz.files}
    rows = [{"label": f"day {d}", "status": "ok", "reason": "", "preview": preview} for d in (7, 14, 28)]
    fig = change.plot_patient_changes(rows, "S1")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    drawn = np.flatnonzero((rgb < 250).any(axis=2)[:, rgb.shape[1] // 3])  # a column through the axial pictures
    top, bottom = drawn[0], drawn[-1]
    white = ~(rgb[top:bottom] < 250).any(axis=(1, 2))
    longest = max((len(run) for run in "".join("w" if w else "." for w in white).split(".")), default=0)
    assert longest <= 0.02 * rgb.shape[0], longest


def test_change_endpoints_in_the_analysis_plan():
    """A change-map endpoint of the plan (source: change): the pairs of each visit compared by arm, pairs not
    compared or against a CT other than the baseline scan left out and named in the note."""
    from lungtrial import stats

    visits = {"baseline": [-3, 1], "day7": [5, 10], "day28": [24, 35]}
    plan = stats.load_plan(
        {"outcomes": [
            {"name": "opacity", "type": "imaging", "column": "pct_opacity", "label": "Opacity", "role": "primary",
             "visits": ["day28"]},
            {"name": "resolved", "type": "imaging", "source": "change", "column": "resolved_fraction",
             "label": "Resolved", "unit": "%", "family": "change_maps"},
        ]},
        visits,
    )
    assert plan.imaging_metrics() == ["pct_opacity"] and [o.name for o in plan.change_endpoints()] == ["resolved"]
    rng = np.random.default_rng(3)
    scans, pairs = [], []
    for i in range(1, 9):
        subject, arm = f"S{i}", ("drug" if i % 2 else "placebo")
        for day, visit in ((0, "baseline"), (7, "day7"), (28, "day28")):
            scans.append({"scan_id": f"{subject}-D{day}", "subject_id": subject, "arm": arm, "study_day": day,
                          "visit": visit, "status": "ok", "pct_opacity": rng.uniform(5, 20)})
            if day:
                pairs.append({"subject_id": subject, "arm": arm, "baseline_scan": f"{subject}-D0",
                              "followup_scan": f"{subject}-D{day}", "study_day": day, "visit": visit,
                              "resolved_fraction": (80.0 if arm == "drug" else 20.0) + i, "status": "ok"})
    scans, pairs = pd.DataFrame(scans), pd.DataFrame(pairs)
    pairs.loc[pairs["followup_scan"] == "S2-D7", ["status", "resolved_fraction"]] = ["failed", np.nan]
    scans.loc[scans["scan_id"] == "S3-D0", "status"] = "excluded"  # S3's change maps are against its day 7 CT
    pairs.loc[pairs["subject_id"] == "S3", "baseline_scan"] = "S3-D7"
    table = stats.imaging_outcomes(plan, scans, "placebo", "drug", 3, change=pairs).set_index(["outcome", "visit"])
    day7 = table.loc[("resolved", "day7")]
    assert (day7["source"], day7["analysis"], day7["n_reference"], day7["n_treatment"]) == (
        "change", "mann-whitney", 3, 3)
    assert "1 pair(s) not compared left out (S2: failed)" in day7["note"]
    assert "1 pair(s) against a CT other than the subject's baseline scan left out (S3: S3-D7)" in day7["note"]
    # drug S1, S5, S7: 81, 85, 87 against placebo S4, S6, S8: 24, 26, 28 (exact test, smallest p for 3 and 3)
    assert day7["hl_difference"] == pytest.approx(59.0) and day7["p_value"] == pytest.approx(0.1)
    assert table.loc[("resolved", "day28"), "n_reference"] == 4 and table.loc[("opacity", "day28"), "source"] == "scans"
    with pytest.raises(InputError, match="change table"):
        stats.imaging_outcomes(plan, scans, "placebo", "drug", 3)



def test_a_pair_whose_masks_cannot_be_read_is_a_failed_pair(tmp_path):
    """An unreadable mask fails its pair with the reason (the change table and the statistics go on), not the run."""
    import json

    from lungtrial.imaging.change import compare_scans

    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "lungs.nii.gz").write_bytes(b"not a NIfTI file")
    series = {"status": "ok"}

    class Volume:
        hu = np.zeros((4, 4, 4), np.int16)

    import lungtrial.imaging.dicom as dicom

    original = dicom.read_volume
    dicom.read_volume = lambda folder, series, padding_mask=False: Volume()
    try:
        result = compare_scans(
            {"scan_id": "S-D00", "series": series, "folder": tmp_path, "masks": masks},
            {"scan_id": "S-D07", "series": series, "folder": tmp_path, "masks": masks},
            tmp_path / "pair",
        )
    finally:
        dicom.read_volume = original
    assert result["status"] == "failed" and "lungs.nii.gz" in result["reason"] and "S-D00" in result["reason"]
    saved = json.loads((tmp_path / "pair" / "qc.json").read_text())
    assert saved["status"] == "failed"
    assert (tmp_path / "pair" / "volumes.csv").exists() and (tmp_path / "pair" / "map").is_dir()


def test_a_pair_of_two_patients_is_an_error_naming_both_scans(tmp_path, monkeypatch):
    """A scans sheet pointing a scan at another subject's folder: the pair is not registered nor reported."""
    from lungtrial.errors import InputError
    from lungtrial.imaging import dicom
    from lungtrial.imaging.change import compare_scans

    keys = {"a": "k1", "b": "k2"}
    monkeypatch.setattr(dicom._volume, "patient_key", lambda folder, series: keys[series["which"]])
    monkeypatch.setattr(dicom, "read_volume", lambda *a, **k: pytest.fail("a pair of two patients was read"))
    scans = [
        {"scan_id": sid, "series": {"status": "ok", "which": w}, "folder": tmp_path, "masks": tmp_path}
        for sid, w in (("S-D00", "a"), ("S-D07", "b"))
    ]
    with pytest.raises(InputError, match="baseline scan S-D00 and the follow-up scan S-D07 hold images of different"):
        compare_scans(*scans, tmp_path / "pair")
    assert not (tmp_path / "pair").exists()
    with pytest.raises(pytest.fail.Exception):  # the check turned off (de-identified with a PatientID per study)
        compare_scans(*scans, tmp_path / "pair", same_patient=False)
    keys["b"] = "k1"  # one patient: read as usual (here the stand-in read stops it)
    with pytest.raises(pytest.fail.Exception):
        compare_scans(*scans, tmp_path / "pair")


def _hand_built():
    """Baseline and (already registered) follow-up labels on a 1 x 6 x 8 grid with every transition."""
    shape = (1, 6, 8)
    base_lungs = np.zeros(shape, np.uint8)
    base_lungs[0, :, :4] = 1
    base_lungs[0, :, 4:] = 2
    base_lungs[0, 5, :] = 0  # not lung at baseline
    follow_lungs = base_lungs.copy()
    follow_lungs[0, 4, 6:] = 0  # outside the follow-up's lungs
    follow_lungs[0, 5, :] = 1  # follow-up lung where the baseline has none: not counted
    b = np.zeros(shape, np.uint8)
    f = np.zeros(shape, np.uint8)
    # row 0: normal->normal, ggo->normal, cons->normal, ggo->ggo, cons->cons, normal->ggo, normal->cons, ggo->cons
    b[0, 0] = [0, 1, 2, 1, 2, 0, 0, 1]
    f[0, 0] = [0, 0, 0, 1, 2, 1, 2, 2]
    # row 1: cons->ggo, vessel->normal, normal->vessel, vessel->vessel, then normal
    b[0, 1, :4] = [2, 3, 0, 3]
    f[0, 1, :4] = [1, 0, 3, 3]
    f[0, 5, :] = 2  # follow-up opacity outside the baseline lungs
    b[0, 4, 6:] = 1  # baseline ggo where the follow-up has no lung
    return base_lungs, b, follow_lungs, f


def test_change_labels_on_a_hand_built_pair():
    base_lungs, b, follow_lungs, f = _hand_built()
    labels = change.change_labels(base_lungs, b, follow_lungs, f)
    c = change
    assert labels[0, 0].tolist() == [
        c.NORMAL,
        c.RESOLVED,
        c.RESOLVED,
        c.PERSISTENT,
        c.PERSISTENT,
        c.NEW,
        c.NEW,
        c.PROGRESSED,
    ]
    assert labels[0, 1, :4].tolist() == [c.REGRESSED, c.NOT_COMPARED, c.NOT_COMPARED, c.NOT_COMPARED]
    assert labels[0, 4, 6:].tolist() == [c.NOT_COMPARED] * 2
    assert labels[0, 5].tolist() == [0] * 8
    assert labels.dtype == np.uint8


def test_change_volumes_whole_lung_and_regions():
    base_lungs, b, follow_lungs, f = _hand_built()
    labels = change.change_labels(base_lungs, b, follow_lungs, f)
    spacing = (10.0, 10.0, 10.0)  # 1 mL voxels
    row, regions = change.change_volumes(labels, base_lungs, spacing)
    assert row["lung_volume_ml"] == 40
    assert (row["resolved_ml"], row["persistent_ml"], row["new_ml"]) == (2, 2, 2)
    assert (row["progressed_ml"], row["regressed_ml"], row["not_compared_ml"]) == (1, 1, 5)
    assert row["normal_ml"] == 40 - 2 - 2 - 2 - 1 - 1 - 5
    assert row["pct_resolved"] == pytest.approx(5.0)
    assert row["baseline_opacity_compared_ml"] == 6
    assert row["resolved_fraction"] == pytest.approx(100 * 2 / 6)
    assert list(regions["region"]) == [
        "right_upper",
        "right_middle",
        "right_lower",
        "left_upper",
        "left_middle",
        "left_lower",
    ]
    # one slice: every voxel of a lung falls in one zone, and the regions add up to the whole lung
    for col in ("lung_volume_ml", "resolved_ml", "new_ml", "progressed_ml", "not_compared_ml"):
        assert regions[col].sum() == pytest.approx(row[col])
    right = regions[regions["side"] == "right"]
    assert right["lung_volume_ml"].sum() == 20 and right["progressed_ml"].sum() == 0
    assert regions.loc[regions["side"] == "left", "progressed_ml"].sum() == 1


def test_change_map_and_colour_table_files(tmp_path):
    base_lungs, b, follow_lungs, f = _hand_built()
    labels = change.change_labels(base_lungs, b, follow_lungs, f)
    path = tmp_path / "change.nii.gz"
    change.write_change_map(labels, path, (2.5, 0.7, 0.7), ORIGIN, np.eye(3))
    img = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), labels)
    np.testing.assert_allclose(img.GetOrigin(), ORIGIN, atol=1e-4)
    np.testing.assert_allclose(img.GetSpacing(), (0.7, 0.7, 2.5), atol=1e-6)
    table = tmp_path / "change.ctbl"
    change.write_colour_table(table)
    lines = [ln for ln in table.read_text().splitlines() if not ln.startswith("#")]
    assert [ln.split()[1] for ln in lines] == list(change.CHANGE_NAMES)


def test_change_labels_refuse_mismatched_grids():
    base_lungs, b, follow_lungs, f = _hand_built()
    with pytest.raises(ValueError, match="follow_opacity"):
        change.change_labels(base_lungs, b, follow_lungs, f[:, :-1])
    with pytest.raises(ValueError, match="labels 0-3"):
        change.change_labels(base_lungs, b, follow_lungs, f + 4)
