"""Metrics on volumes with known HU content: exact volumes, percentages, regions, scores, vessel exclusion."""

import numpy as np
import pandas as pd
import pytest

from lungtrial.errors import InputError
from lungtrial.imaging.metrics import (
    MIN_LESION_ML,
    REGIONS,
    HUClass,
    hu_classes,
    involvement_score,
    lesion_metrics,
    measure,
    measure_and_label,
    measure_regions,
    measure_scan,
    metric_columns,
    opacity_labels,
)

SPACING = (2.5, 0.8, 0.6)  # anisotropic (dz, dy, dx) mm
VOXEL_ML = 2.5 * 0.8 * 0.6 / 1000


def two_lungs(nz=30, hu_value=-850):
    """Right lung in columns 0-9, left lung in columns 10-19, both on slices 0..nz-1; all voxels one HU."""
    hu = np.full((nz, 10, 20), hu_value, dtype=np.int16)
    lungs = np.zeros(hu.shape, dtype=np.uint8)
    lungs[:, :, :10] = 1
    lungs[:, :, 10:] = 2
    return hu, lungs


def test_volumes_and_classes_exact_with_anisotropic_spacing():
    hu, lungs = two_lungs()
    hu[:, :, 10:] = -500  # left lung: ground glass
    hu[:, :5, 15:] = 20  # quarter of the left lung: consolidation
    hu[0, 0, 0] = -700  # boundary: normal (upper bound inclusive)
    hu[0, 0, 1] = -300  # boundary: ground glass
    hu[0, 0, 2] = -299  # consolidation
    row = measure_scan(hu, lungs, SPACING)
    n = hu.size
    assert row["lung_volume_ml"] == pytest.approx(n * VOXEL_ML)
    assert row["right_lung_ml"] == pytest.approx(n / 2 * VOXEL_ML)
    assert row["left_lung_ml"] == pytest.approx(n / 2 * VOXEL_ML)
    n_cons = 30 * 5 * 5 + 1
    n_ggo = 30 * 10 * 10 - 30 * 5 * 5 + 1
    assert row["consolidation_ml"] == pytest.approx(n_cons * VOXEL_ML)
    assert row["ground_glass_ml"] == pytest.approx(n_ggo * VOXEL_ML)
    assert row["normal_ml"] == pytest.approx((n - n_cons - n_ggo) * VOXEL_ML)
    assert row["pct_opacity"] == pytest.approx(100 * (n_cons + n_ggo) / n)
    assert row["pct_consolidation"] == pytest.approx(100 * n_cons / n)
    assert row["pct_high_opacity"] == pytest.approx(100 * (30 * 5 * 5) / n)  # -299 is not > -200
    assert row["vessel_ml"] == 0
    assert row["opacity_source"] == "hu_thresholds"


def test_density_statistics_match_numpy():
    rng = np.random.default_rng(1)
    hu, lungs = two_lungs()
    hu[:] = rng.integers(-1100, 200, size=hu.shape)
    lungs[:3] = 0
    row = measure_scan(hu, lungs, SPACING)
    values = hu[lungs > 0].astype(float)
    assert row["mean_hu"] == pytest.approx(values.mean())
    assert row["median_hu"] == pytest.approx(np.median(values))
    for q in (5, 15, 25, 75, 95):
        assert row[f"p{q}_hu"] == pytest.approx(np.percentile(values, q))


def test_float_hu_is_rounded():
    hu, lungs = two_lungs(hu_value=-850)
    row = measure_scan(hu.astype(np.float32) + 0.2, lungs, SPACING)
    assert row["mean_hu"] == -850


def test_ards_compartments():
    hu, lungs = two_lungs()
    values = np.array([-1010, -950, -900, -899, -600, -500, -499, -100, -99, 100, 101], dtype=np.int16)
    hu.reshape(-1)[: values.size] = values
    row = measure_scan(hu, lungs, SPACING)
    n_rest = hu.size - values.size  # -850: normally aerated
    assert row["hyperinflated_ml"] == pytest.approx(3 * VOXEL_ML)
    assert row["normally_aerated_ml"] == pytest.approx((3 + n_rest) * VOXEL_ML)
    assert row["poorly_aerated_ml"] == pytest.approx(2 * VOXEL_ML)
    assert row["non_aerated_ml"] == pytest.approx(2 * VOXEL_ML)  # 101 HU is in no compartment
    assert row["pct_hyperinflated"] == pytest.approx(100 * 3 / hu.size)


def test_vessels_count_in_lung_but_not_in_opacity():
    hu, lungs = two_lungs()
    vessels = np.zeros(hu.shape, dtype=bool)
    vessels[:, 2:4, 2:4] = True
    hu[vessels] = 40
    hu[:, 8:, :] = -600  # ground glass band, partly under no vessel
    row = measure_scan(hu, lungs, SPACING, vessels=vessels)
    n_ves = int(vessels.sum())
    assert row["lung_volume_ml"] == pytest.approx(hu.size * VOXEL_ML)
    assert row["vessel_ml"] == pytest.approx(n_ves * VOXEL_ML)
    assert row["consolidation_ml"] == 0
    assert row["ground_glass_ml"] == pytest.approx(30 * 2 * 20 * VOXEL_ML)
    assert row["normal_ml"] + row["ground_glass_ml"] + row["consolidation_ml"] + row["vessel_ml"] == pytest.approx(
        row["lung_volume_ml"]
    )
    assert row["mean_hu"] > -850  # vessels are part of the lung density
    labels = opacity_labels(hu, lungs, vessels=vessels)
    assert labels.dtype == np.uint8
    assert (labels[vessels] == 3).all()
    assert (labels[:, 8:, :] == 1).all()
    assert int((labels == 0).sum()) == hu.size - n_ves - 30 * 2 * 20


def test_regions_split_by_thirds_of_each_lung():
    hu, lungs = two_lungs(nz=30)
    lungs[:, :, :10] = 0
    lungs[3:27, :, :10] = 1  # right lung on slices 3..26: thirds of 8 slices
    regions = measure_regions(hu, lungs, SPACING)
    assert list(regions["region"]) == list(REGIONS)
    vol = dict(zip(regions["region"], regions["lung_volume_ml"]))
    assert vol["right_lower"] == pytest.approx(8 * 100 * VOXEL_ML)
    assert vol["right_middle"] == pytest.approx(8 * 100 * VOXEL_ML)
    assert vol["right_upper"] == pytest.approx(8 * 100 * VOXEL_ML)
    assert vol["left_lower"] == pytest.approx(10 * 100 * VOXEL_ML)
    # axis 0 increases towards the head: opacity on the top slices is in the upper zone
    hu[20:30, :, 10:] = -400
    regions = measure_regions(hu, lungs, SPACING).set_index("region")
    assert regions.loc["left_upper", "pct_ground_glass"] == pytest.approx(100)
    assert regions.loc["left_lower", "pct_ground_glass"] == 0
    assert regions.loc["right_upper", "pct_ground_glass"] == 0


def test_uneven_thirds_use_slice_centres():
    hu, lungs = two_lungs(nz=10)
    regions = measure_regions(hu, lungs, (1.0, 1.0, 1.0)).set_index("region")
    # 10 slices, centres 0.5 .. 9.5 split at 3.33 and 6.67: 3 lower, 4 middle, 3 upper
    assert regions.loc["right_lower", "lung_volume_ml"] == pytest.approx(3 * 100 / 1000)
    assert regions.loc["right_middle", "lung_volume_ml"] == pytest.approx(4 * 100 / 1000)
    assert regions.loc["right_upper", "lung_volume_ml"] == pytest.approx(3 * 100 / 1000)


@pytest.mark.parametrize(
    "pct, score",
    [(0, 0), (0.5, 0), (1, 1), (24.9, 1), (25, 2), (49.9, 2), (50, 3), (74.9, 3), (75, 4), (100, 4), (np.nan, 0)],
)
def test_involvement_score(pct, score):
    assert involvement_score(pct) == score


def test_involvement_scores_and_severity():
    hu, lungs = two_lungs(nz=30)  # each zone: 10 slices of 10 x 10
    # right upper: 80 % opacity, right middle: 30 %, left lower: 60 %, right lower: 10 %, others none
    hu[20:30, :8, :10] = -500
    hu[10:20, :3, :10] = -500
    hu[0:10, :6, 10:] = 0
    hu[0:10, :1, :10] = -500
    scan, regions = measure(hu, lungs, SPACING)
    scores = dict(zip(regions["region"], regions["involvement_score"]))
    assert scores == {
        "right_upper": 4,
        "right_middle": 2,
        "right_lower": 1,
        "left_upper": 0,
        "left_middle": 0,
        "left_lower": 3,
    }
    assert scan["severity_score"] == 10
    assert regions.loc[regions.region == "left_lower", "pct_consolidation"].item() == pytest.approx(60)


def test_lesion_mask_replaces_thresholds():
    hu, lungs = two_lungs()
    hu[:, :, :5] = -600  # ground-glass HU, but outside the lesion
    lesion = np.zeros(hu.shape, dtype=np.uint8)
    lesion[:, :2, 10:] = 1  # lesion on -850 HU voxels: ground glass by the mask
    lesion[:, 9, 10:] = 1
    hu[:, 9, 10:] = -100  # consolidation inside the lesion, also high opacity
    lesion[0, 0, 0] = 1
    lungs[0, 0, 0] = 0  # lesion outside the lung does not count
    row = measure_scan(hu, lungs, SPACING, lesion_mask=lesion)
    assert row["opacity_source"] == "lesion_mask"
    assert row["ground_glass_ml"] == pytest.approx(30 * 2 * 10 * VOXEL_ML)
    assert row["consolidation_ml"] == pytest.approx(30 * 10 * VOXEL_ML)
    assert row["high_opacity_ml"] == pytest.approx(30 * 10 * VOXEL_ML)
    n_lung = int((lungs > 0).sum())
    assert row["normal_ml"] == pytest.approx((n_lung - 30 * 3 * 10) * VOXEL_ML)
    labels = opacity_labels(hu, lungs, lesion_mask=lesion)
    assert int((labels == 1).sum()) == 30 * 2 * 10 and int((labels == 2).sum()) == 30 * 10


def test_custom_classes():
    classes = hu_classes([{"name": "dense", "lower": -100, "upper": None}, {"name": "air", "upper": -950}])
    hu, lungs = two_lungs()
    hu[:, 0, :] = -50
    hu[:, 1, :] = -990
    row = measure_scan(hu, lungs, SPACING, classes=classes)
    assert row["dense_ml"] == pytest.approx(30 * 20 * VOXEL_ML)
    assert row["pct_air"] == pytest.approx(10)
    scan_cols, region_cols = metric_columns(classes)
    assert "pct_dense" in scan_cols and "pct_dense" in region_cols and "involvement_score" in region_cols


@pytest.mark.parametrize(
    "spec",
    [
        [{"name": "x", "lower": 0, "upper": -10}],
        [{"name": "ground_glass", "lower": 0}],
        [{"name": "a b"}],
        [{"name": "a", "lower": "low"}],
        [{"name": "a", "min": 0}],
        [{"name": "a"}, {"name": "a"}],
    ],
)
def test_bad_custom_classes(spec):
    with pytest.raises(InputError):
        hu_classes(spec)


def test_ards_opacity_labels_and_errors():
    hu, lungs = two_lungs()
    hu[:, 0, :] = -300  # poorly aerated
    hu[:, 1, :] = 0  # non-aerated
    labels = opacity_labels(hu, lungs, preset="ards")
    assert (labels[:, 0] == 1).all() and (labels[:, 1] == 2).all() and (labels[:, 2:] == 0).all()
    with pytest.raises(InputError):
        opacity_labels(hu, lungs, preset="other")
    with pytest.raises(ValueError, match="shape"):
        measure_scan(hu, lungs[:-1], SPACING)


def test_missing_lung_gives_empty_regions():
    hu, lungs = two_lungs()
    lungs[lungs == 2] = 0
    scan, regions = measure(hu, lungs, SPACING)
    assert scan["left_lung_ml"] == 0
    left = regions[regions.side == "left"]
    assert (left["lung_volume_ml"] == 0).all() and left["mean_hu"].isna().all()
    assert (left["involvement_score"] == 0).all()
    assert isinstance(regions, pd.DataFrame)


def test_class_bins_boundaries():
    assert HUClass("a", -700, -300).bin_range() == (-699 + 32768, -299 + 32768)


def test_not_opacity_voxels_count_as_normal():
    hu, lungs = two_lungs()
    hu[:, 0, :] = -600  # partial-volume rim reading as ground glass
    hu[:, 5, :] = -600  # real ground glass
    vessels = np.zeros(hu.shape, dtype=bool)
    vessels[:, 7, :] = True
    hu[vessels] = 30
    guard = np.zeros(hu.shape, dtype=bool)
    guard[:, 0, :] = True
    guard[:, 7:9, :] = True  # vessel + its halo (-850 here)
    row = measure_scan(hu, lungs, SPACING, vessels=vessels, not_opacity=guard)
    assert row["ground_glass_ml"] == pytest.approx(30 * 20 * VOXEL_ML)
    assert row["vessel_ml"] == pytest.approx(30 * 20 * VOXEL_ML)
    assert row["normal_ml"] == pytest.approx((hu.size - 2 * 30 * 20) * VOXEL_ML)
    assert row["normally_aerated_ml"] == pytest.approx((hu.size - 30 * 20) * VOXEL_ML)  # ARDS uses HU only
    labels = opacity_labels(hu, lungs, vessels=vessels, not_opacity=guard)
    assert (labels[:, 0] == 0).all() and (labels[:, 5] == 1).all() and (labels[:, 7] == 3).all()
    lesion = np.zeros(hu.shape, dtype=bool)
    lesion[:, 0, :] = True  # a lesion mask overrides not_opacity
    assert measure_scan(hu, lungs, SPACING, lesion_mask=lesion, not_opacity=guard)["pct_ground_glass"] == 10


def _random_scan(seed=7, shape=(41, 12, 14)):
    """Irregular lungs over more slices than one processing slab, random HU over a wide range, random masks."""
    rng = np.random.default_rng(seed)
    hu = rng.integers(-1200, 400, size=shape).astype(np.int16)
    hu[3, 4, 5], hu[30, 2, 2] = -3000, 3000  # far outside the usual HU range of a slab
    lungs = np.zeros(shape, dtype=np.uint8)
    lungs[2:39, 1:11, 1:7] = 1
    lungs[5:37, 1:11, 7:13] = 2
    lungs[rng.random(shape) < 0.2] = 0
    masks = {name: rng.random(shape) < 0.15 for name in ("vessels", "lesion_mask", "not_opacity")}
    return hu, lungs, masks


def test_region_and_class_counts_match_brute_force():
    hu, lungs, masks = _random_scan()
    vessels, guard = masks["vessels"], masks["not_opacity"]
    scan, regions = measure(hu, lungs, SPACING, vessels=vessels, not_opacity=guard)
    lung = lungs > 0
    tissue = lung & ~vessels
    eligible = tissue & ~guard
    ggo = eligible & (hu > -700) & (hu <= -300)
    cons = eligible & (hu > -300)
    assert scan["ground_glass_ml"] == pytest.approx(ggo.sum() * VOXEL_ML)
    assert scan["consolidation_ml"] == pytest.approx(cons.sum() * VOXEL_ML)
    assert scan["normal_ml"] == pytest.approx((tissue.sum() - ggo.sum() - cons.sum()) * VOXEL_ML)
    assert scan["vessel_ml"] == pytest.approx((lung & vessels).sum() * VOXEL_ML)
    assert scan["non_aerated_ml"] == pytest.approx((tissue & (hu > -100) & (hu <= 100)).sum() * VOXEL_ML)
    assert scan["mean_hu"] == pytest.approx(hu[lung].mean())
    assert scan["p15_hu"] == pytest.approx(np.percentile(hu[lung], 15))
    # zones by thirds of each lung's own extent: right slices 2..38, left slices 5..36 (axis 0 towards the head)
    z = np.arange(hu.shape[0])[:, None, None]
    for side, label, (z0, z1) in (("right", 1, (2, 38)), ("left", 2, (5, 36))):
        third = np.clip(np.floor(3 * (z - z0 + 0.5) / (z1 - z0 + 1)), 0, 2)
        for k, zone in enumerate(("lower", "middle", "upper")):
            sel = (lungs == label) & (third == k)
            row = regions.set_index("region").loc[f"{side}_{zone}"]
            assert row["lung_volume_ml"] == pytest.approx(sel.sum() * VOXEL_ML)
            assert row["ground_glass_ml"] == pytest.approx((ggo & sel).sum() * VOXEL_ML)
            assert row["median_hu"] == pytest.approx(np.median(hu[sel]))


@pytest.mark.parametrize("preset", ["radiology", "ards"])
@pytest.mark.parametrize(
    "use", [(), ("vessels",), ("vessels", "not_opacity"), ("vessels", "lesion_mask", "not_opacity")]
)
def test_measure_and_label_equals_separate_calls(preset, use):
    hu, lungs, masks = _random_scan(seed=len(use))
    given = {k: masks[k] for k in use}
    scan, regions, labels = measure_and_label(hu, lungs, SPACING, preset=preset, **given)
    scan_ref, regions_ref = measure(hu, lungs, SPACING, **given)
    assert scan == pytest.approx(scan_ref, nan_ok=True) and list(scan) == list(scan_ref)
    pd.testing.assert_frame_equal(regions, regions_ref)
    expected = opacity_labels(hu, lungs, preset=preset, **given)
    assert labels.dtype == np.uint8 and (labels == expected).all()
    assert (labels[lungs == 0] == 0).all()
    if "vessels" in use:
        assert (labels[(lungs > 0) & masks["vessels"]] == 3).all()


def test_mask_dtypes_and_layouts_do_not_change_results():
    hu, lungs, masks = _random_scan()
    ref = measure_and_label(hu, lungs, SPACING, vessels=masks["vessels"], not_opacity=masks["not_opacity"])
    fortran = {k: np.asfortranarray(v.astype(np.uint8) * 5) for k, v in masks.items()}  # non-zero = True
    got = measure_and_label(
        np.asfortranarray(hu),
        np.asfortranarray(lungs),
        SPACING,
        vessels=fortran["vessels"],
        not_opacity=fortran["not_opacity"],
    )
    assert got[0] == pytest.approx(ref[0], nan_ok=True)
    pd.testing.assert_frame_equal(got[1], ref[1])
    assert (got[2] == ref[2]).all()
    lungs_bad = lungs.astype(np.int16)
    lungs_bad[10, 3, 3] = -1
    with pytest.raises(ValueError, match="labels 0"):
        measure(hu, lungs_bad, SPACING)
    lungs_bad = lungs.copy()
    lungs_bad[0, 0, 0] = 3  # on a slice without lung
    with pytest.raises(ValueError, match="labels 0"):
        measure(hu, lungs_bad, SPACING)
    with pytest.raises(InputError, match="preset"):
        measure_and_label(hu, lungs, SPACING, preset="other")


def test_large_volume_labels_match_brute_force():
    """A volume big enough for the label volume to be allocated lazily (only the lungs' box is written)."""
    rng = np.random.default_rng(3)
    shape = (64, 256, 256)  # 4.2 Mvoxel
    hu = np.full(shape, -1000, dtype=np.int16)
    lungs = np.zeros(shape, dtype=np.uint8)
    lungs[10:50, 60:200, 30:120] = 1
    lungs[12:55, 60:200, 130:230] = 2
    box = lungs > 0
    hu[box] = rng.integers(-1000, 200, size=int(box.sum()))
    vessels = box & (rng.random(shape) < 0.05)
    scan, regions, labels = measure_and_label(hu, lungs, SPACING, vessels=vessels)
    expected = np.zeros(shape, dtype=np.uint8)
    expected[box & (hu > -700) & (hu <= -300)] = 1
    expected[box & (hu > -300)] = 2
    expected[vessels] = 3
    assert labels.dtype == np.uint8 and labels.flags.writeable and (labels == expected).all()
    assert scan["lung_volume_ml"] == pytest.approx(box.sum() * VOXEL_ML)
    assert regions["lung_volume_ml"].sum() == pytest.approx(scan["lung_volume_ml"])


def test_lesions_are_26_connected_opacity_and_exclude_vessels():
    labels = np.zeros((6, 8, 8), dtype=np.uint8)
    labels[1, 1:3, 1:3] = 1  # ground glass, 4 voxels ...
    labels[2, 3, 3] = 2  # ... and consolidation touching it by a corner only: one lesion of 5 voxels
    labels[4, 6, 6] = 1  # a lesion of its own
    labels[1:5, 5, 1] = 3  # vessel: not opacity, and joins nothing
    labels[4, 5, 2] = 1  # touches only the vessel: a third lesion
    assert lesion_metrics(labels, SPACING) == {"n_lesions": 3, "largest_lesion_ml": pytest.approx(5 * VOXEL_ML)}
    assert lesion_metrics(np.where(labels == 3, 0, 3 * (labels > 0)).astype(np.uint8), SPACING)["n_lesions"] == 0
    assert lesion_metrics(np.zeros((2, 2, 2), np.uint8), SPACING) == {"n_lesions": 0, "largest_lesion_ml": 0.0}


def test_lesions_match_scipy_components_on_random_masks():
    """The same components as scipy.ndimage.label with the full 3 x 3 x 3 structure, on speckled label volumes."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for density in (0.05, 0.2, 0.35):
        labels = rng.choice(
            np.array([0, 1, 2, 3], np.uint8), size=(9, 23, 17), p=[1 - density, density / 2, density / 4, density / 4]
        )
        found, n = ndimage.label((labels == 1) | (labels == 2), structure=np.ones((3, 3, 3), bool))
        largest = np.bincount(found.ravel())[1:].max(initial=0) * VOXEL_ML
        assert lesion_metrics(labels, SPACING) == {"n_lesions": n, "largest_lesion_ml": pytest.approx(largest)}


def test_lesion_columns_of_the_scan_row():
    hu, lungs = two_lungs()
    hu[10:14, 2:8, 2:8] = -500  # right lung: one ground-glass lesion of 144 voxels (0.17 mL)
    hu[20:22, 2:8, 12:18] = 0  # left lung: consolidation of 72 voxels (0.086 mL, below MIN_LESION_ML)
    hu[25, 5, 15] = 0  # left lung: one consolidation voxel
    vessels = np.zeros(hu.shape, dtype=bool)
    vessels[25, 5, 16] = True
    hu[25, 5, 16] = 0  # a vessel beside it: not part of the lesion
    scan, regions, labels = measure_and_label(hu, lungs, SPACING, vessels=vessels)
    # the pieces smaller than MIN_LESION_ML count in the volumes, not as lesions of their own
    assert scan["n_lesions"] == 1 and scan["largest_lesion_ml"] == pytest.approx(144 * VOXEL_ML)
    assert scan["consolidation_ml"] == pytest.approx(73 * VOXEL_ML)
    columns = ("n_lesions", "largest_lesion_ml")
    assert lesion_metrics(labels, SPACING, min_ml=MIN_LESION_ML) == {k: scan[k] for k in columns}
    assert lesion_metrics(labels, SPACING)["n_lesions"] == 3  # every component
    assert measure_scan(hu, lungs, SPACING, vessels=vessels)["n_lesions"] == 1
    assert "n_lesions" not in regions.columns
    ards = measure_and_label(hu, lungs, SPACING, vessels=vessels, preset="ards")[0]  # lesions are radiology opacity
    assert ards["n_lesions"] == 1
    # with a lesion mask every component of it is a lesion, however small
    mask = np.zeros(hu.shape, dtype=bool)
    mask[10:14, 2:8, 2:8] = mask[20:22, 2:8, 12:18] = mask[25, 5, 15] = True
    assert measure_scan(hu, lungs, SPACING, vessels=vessels, lesion_mask=mask)["n_lesions"] == 3
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="min_ml"):
            lesion_metrics(labels, SPACING, min_ml=bad)
    # only pieces below MIN_LESION_ML: no lesion, and no largest lesion
    hu[10:14, 2:8, 2:8] = -850
    scan = measure_scan(hu, lungs, SPACING, vessels=vessels)
    assert scan["n_lesions"] == 0 and scan["largest_lesion_ml"] == 0.0 and scan["consolidation_ml"] > 0
    scan_cols, _ = metric_columns()
    assert scan_cols.index("largest_lesion_ml") == scan_cols.index("n_lesions") + 1
