"""The change-map orchestration (lungtrial.imaging.change.compare_volumes / compare_scans) on tiny synthetic
volumes: a follow-up shifted against its baseline, one lesion resolved, one new, one grown into consolidation."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from lungtrial.imaging import change

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
