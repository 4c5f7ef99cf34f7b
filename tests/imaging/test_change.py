"""lungtrial.imaging.change: the change labels of a hand-built pair (change_labels, change_volumes, write_change_map,
write_colour_table). The pairs' orchestration (compare_volumes, compare_scans: module ``_change_pairs``) is in
test_change_pairs.py, the patient picture in test_change_picture.py, the change table in test_change_table.py, the
change maps' endpoints in the analysis plan in tests/stats/test_plan_outcomes.py."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from lungtrial.imaging import change

from scan_grid import ORIGIN


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
    with pytest.raises(ValueError, match="labels 0-7"):
        change.change_labels(base_lungs, b, follow_lungs, f + 8)
    with pytest.raises(ValueError, match="labels 0-3"):
        change.change_labels(base_lungs, b, follow_lungs + 4, f)


def test_a_lesions_reach_counts_where_the_other_time_has_counted_opacity():
    """A thin edge or a vessel within a lesion's reach takes its class against counted opacity; a vessel away from
    any lesion counts as normal lung; neither time counted: normal, or not compared at a vessel."""
    c = change
    pairs = {
        (c.THIN_FIRST, 2): c.PROGRESSED,  # the baseline lesion's thin edge, consolidation at follow-up
        (c.VESSEL_FIRST, 2): c.PROGRESSED,  # a vessel through baseline ground glass, engulfed by consolidation
        (c.THIN_SECOND, 1): c.REGRESSED,
        (1, c.THIN_FIRST): c.PERSISTENT,  # counted at baseline, the follow-up lesion's edge there
        (2, c.THIN_FIRST): c.REGRESSED,
        (1, c.VESSEL_FIRST): c.PERSISTENT,
        (3, 2): c.NEW,  # a vessel in normal lung engulfed by new consolidation
        (1, 3): c.RESOLVED,  # a vessel in normal lung where baseline ground glass was
        (0, c.THIN_FIRST): c.NORMAL,  # thin opacity alone is no change (as in the per-scan measurement)
        (c.THIN_SECOND, 0): c.NORMAL,
        (c.THIN_FIRST, c.THIN_FIRST): c.NORMAL,
        (c.VESSEL_FIRST, c.VESSEL_FIRST): c.NOT_COMPARED,
        (c.VESSEL_SECOND, 0): c.NOT_COMPARED,
        (3, c.THIN_FIRST): c.NOT_COMPARED,
    }
    shape = (1, 1, len(pairs))
    lungs = np.ones(shape, np.uint8)
    b = np.array([k[0] for k in pairs], np.uint8).reshape(shape)
    f = np.array([k[1] for k in pairs], np.uint8).reshape(shape)
    labels = change.change_labels(lungs, b, lungs, f)
    got = dict(zip(pairs, labels.ravel().tolist(), strict=True))
    assert got == pairs


def test_lesion_reach_marks_thin_edges_and_vessels_near_counted_opacity():
    spacing = (1.0, 0.5, 0.5)
    shape = (20, 60, 80)
    z, y, x = np.indices(shape)
    hu = np.full(shape, -850, np.int16)
    lungs = np.ones(shape, np.uint8)
    opacity = np.zeros(shape, np.uint8)
    r = np.sqrt(((z - 10) * spacing[0]) ** 2 + ((y - 30) * spacing[1]) ** 2 + ((x - 30) * spacing[2]) ** 2)
    opacity[r <= 6] = 1  # counted ground glass, 6 mm radius
    hu[r <= 6] = -500
    edge = (r > 6) & (r <= 7.5)  # its blurred edge: ground-glass HU, not counted
    hu[edge] = -650
    consolidation = (r <= 2) & (x < 30)
    opacity[consolidation], hu[consolidation] = 2, 0
    vessel_near = (np.abs(y - 30) <= 2) & (np.abs(z - 10) <= 1) & (x >= 43) & (x < 50)  # 6.5-10 mm from the centre
    vessel_far = (np.abs(y - 30) <= 2) & (np.abs(z - 10) <= 1) & (x >= 60)  # 15 mm and more
    for v in (vessel_near, vessel_far):
        opacity[v], hu[v] = 3, 40
    vessel_in_consolidation = (z == 10) & (y == 30) & (x >= 27) & (x <= 29)
    opacity[vessel_in_consolidation] = 3
    speck = (z == 10) & (y == 5) & (x == 5)  # dense but far from any lesion
    hu[speck] = -600
    out = change.lesion_reach(hu, lungs, opacity, spacing)
    assert out.dtype == np.uint8
    assert (out[edge & ~vessel_near] == change.THIN_FIRST).all()
    near = vessel_near & (r <= 6 + change.LESION_REACH_MM)
    assert near.any() and (out[near] == change.VESSEL_FIRST).all()
    assert (out[vessel_near & (r > 6 + change.LESION_REACH_MM + 0.5)] == 3).all()
    assert (out[vessel_far] == 3).all()
    assert (out[vessel_in_consolidation] == change.VESSEL_SECOND).all()  # within reach of consolidation
    assert out[speck].item() == 0
    assert (out[opacity == 1] == 1).all() and (out[consolidation & ~vessel_in_consolidation] == 2).all()
    assert (out[(hu == -850)] == 0).all()
    # outside the lungs nothing is marked; no counted opacity: the labels unchanged
    out = change.lesion_reach(hu, np.where(edge, 0, lungs), opacity, spacing)
    assert (out[edge & ~vessel_near] == 0).all()
    none = np.where(opacity == 3, 3, 0).astype(np.uint8)
    assert np.array_equal(change.lesion_reach(hu, lungs, none, spacing), none)
