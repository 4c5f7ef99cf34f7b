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
    with pytest.raises(ValueError, match="labels 0-3"):
        change.change_labels(base_lungs, b, follow_lungs, f + 4)
