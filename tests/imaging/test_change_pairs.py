"""Tests for lungtrial.imaging._change_pairs (through lungtrial.imaging.change): a pair of scans registered and
compared on tiny synthetic volumes, pairs not compared or failed, the baseline chosen, two patients refused."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from lungtrial.imaging import change

from change_scans import BASE_LESIONS, FAST, FOLLOW_LESIONS, SHAPE, SPACING, _ball, _scan


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


def test_pair_labels_read_engulfed_vessels_and_thin_edges_as_progressed():
    """Ground glass at baseline with a vessel through it and a thin edge (both not counted as opacity) grows into
    consolidation over them: the vessel and the edge are progressed, as the rest of the lesion, not new or not
    compared (lungtrial.imaging.change.lesion_reach)."""
    from lungtrial.imaging.registration import Grid, register

    centre = BASE_LESIONS["growing"][0]
    base, b_lungs, b_op = _scan(BASE_LESIONS)
    follow, f_lungs, f_op = _scan({"growing": (centre, 15, 2)})
    vessel = _ball(centre, 12) & (np.abs(np.arange(SHAPE[2]) * SPACING[2] - centre[2]) < 2)[None, None, :]
    edge = _ball(centre, 15) & ~_ball(centre, 12) & (b_lungs > 0)
    base.hu[vessel], b_op[vessel] = 40, 3
    base.hu[edge] = -600  # ground glass thinner than a counted opacity
    reg = register(base.hu, b_lungs, SPACING, follow.hu, f_lungs, SPACING, fixed_opacity=b_op,
                   moving_opacity=f_op, threads=1, **FAST)
    labels = change.pair_labels(reg, base, b_lungs, b_op, follow, Grid.of(follow.hu, SPACING), f_lungs, f_op)
    inner = vessel & ndimage_erode(_ball(centre, 12))
    assert np.mean(labels[inner] == change.PROGRESSED) > 0.9
    # the edge's voxels within 4 mm of the counted ground glass (on this 3 mm grid, those sharing a face with it)
    assert np.mean(labels[edge] == change.PROGRESSED) > 0.5
    # compared without the reach, the whole edge would be new
    assert np.mean(change.change_labels(b_lungs, b_op, f_lungs, f_op)[edge] == change.NEW) > 0.9


def ndimage_erode(mask):
    from scipy import ndimage

    return ndimage.binary_erosion(mask)
