"""Registration of a follow-up onto its baseline (lungtrial.imaging.registration), on small synthetic volumes."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from lungtrial.errors import InputError
from lungtrial.imaging import change
from lungtrial.imaging.registration import (
    TRANSFORM_FILES,
    Grid,
    assess,
    load_transform,
    register,
    warp,
    warp_follow_up,
)

from scan_grid import ORIGIN


SPACING = (2.5, 2.0, 2.0)
SHAPE = (56, 80, 96)


def _chest(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A small chest: body (40 HU) in air, two ellipsoid lungs (-850 HU) with branching-like bright blobs
    (vessels, up to -100 HU) and a spine; int16 HU and lung labels (1 right at low x, 2 left)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij")
    cz, cy, cx = (n * s / 2 for n, s in zip(SHAPE, SPACING))
    body = ((y - cy) / 70) ** 2 + ((x - cx) / 90) ** 2 < 1
    lungs = np.zeros(SHAPE, np.uint8)
    for label, sx in ((1, -45), (2, 45)):
        inside = ((z - cz - 5) / 58) ** 2 + ((y - cy) / 50) ** 2 + ((x - cx - sx) / 34) ** 2 < 1
        lungs[inside & body] = label
    hu = np.where(body, 40.0, -1000.0)
    texture = ndimage.gaussian_filter(rng.standard_normal(SHAPE), (1.2, 1.5, 1.5))
    texture /= texture.std()
    vessels = np.clip(texture - 1.2, 0, None) * 500.0
    hu = np.where(lungs > 0, -850.0 + np.minimum(vessels, 750.0), hu)
    spine = ((y - cy - 50) / 12) ** 2 + ((x - cx) / 12) ** 2 < 1
    hu[spine] = 400.0
    hu += rng.normal(0, 10, SHAPE)
    return np.rint(hu).astype(np.int16), lungs


def _known_transform() -> sitk.Transform:
    """Baseline point -> follow-up point: a smooth breathing-like field (up to about 8 mm craniocaudal at the
    bases) then a small rotation and a translation."""
    grid = Grid(SHAPE, SPACING, ORIGIN)
    cell = 5.0
    size = [int(np.ceil((n - 1) * s / cell)) + 2 for n, s in zip(reversed(SHAPE), reversed(SPACING))]
    zz = np.arange(size[2])[:, None, None] * cell
    base = 1.0 - np.clip(zz / (SHAPE[0] * SPACING[0]), 0, 1)  # 1 at the bottom (base), 0 at the top
    yy = np.arange(size[1])[None, :, None] * cell
    field = np.zeros((size[2], size[1], size[0], 3))
    field[..., 2] = 8.0 * base**2 * np.ones_like(yy, dtype=float)
    field[..., 1] = 3.0 * base * np.sin(yy / 60.0)
    img = sitk.GetImageFromArray(field, isVector=True)
    img.SetSpacing((cell,) * 3)
    img.SetOrigin(grid.origin)
    deform = sitk.DisplacementFieldTransform(img)
    rigid = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.03, -0.02, 0.04, (4.0, -3.0, 5.0))
    rigid.SetCenter((ORIGIN[0] + 96.0, ORIGIN[1] + 80.0, ORIGIN[2] + 70.0))
    return sitk.CompositeTransform([rigid, deform])


@pytest.fixture(scope="module")
def pair():
    """Baseline, follow-up (the baseline moved by the known transform's inverse, so that the known transform
    maps baseline points onto the follow-up) and the registration."""
    hu, lungs = _chest()
    grid = Grid(SHAPE, SPACING, ORIGIN)
    truth = _known_transform()
    # follow-up(y) = baseline(T^-1(y)): resample the baseline through the inverse of the known transform
    inverse_field = sitk.InvertDisplacementField(
        sitk.TransformToDisplacementField(truth, sitk.sitkVectorFloat64, [48, 40, 36], ORIGIN, (5.0, 5.0, 5.0)),
        maximumNumberOfIterations=50,
        maxErrorToleranceThreshold=0.01,
        meanErrorToleranceThreshold=0.001,
    )
    inverse = sitk.DisplacementFieldTransform(inverse_field)
    follow_hu = warp(hu, grid, grid, inverse, kind="linear", default=-1000)
    follow_lungs = warp(lungs, grid, grid, inverse, kind="nearest")
    # a new ground-glass lesion in the follow-up's right lung: given as opacity, it must not pull the registration
    z, y, x = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    lesion = (follow_lungs == 1) & (((z - 20) / 6.0) ** 2 + ((y - 40) / 9.0) ** 2 + ((x - 22) / 9.0) ** 2 < 1)
    follow_hu[lesion] = -550
    opacity = np.where(lesion, 1, 0).astype(np.uint8)
    reg = register(
        hu,
        lungs,
        SPACING,
        follow_hu,
        follow_lungs,
        SPACING,
        fixed_origin=ORIGIN,
        moving_origin=ORIGIN,
        fixed_opacity=np.zeros_like(lungs),
        moving_opacity=opacity,
    )
    return {
        "hu": hu,
        "lungs": lungs,
        "grid": grid,
        "truth": truth,
        "inverse": inverse,
        "lesion": lesion,
        "follow_hu": follow_hu,
        "follow_lungs": follow_lungs,
        "opacity": opacity,
        "reg": reg,
    }


def _lung_points(lungs: np.ndarray, grid: Grid, n: int = 2000) -> np.ndarray:
    idx = np.argwhere(ndimage.binary_erosion(lungs > 0, iterations=2))
    idx = idx[np.random.default_rng(0).choice(len(idx), min(n, len(idx)), replace=False)]
    origin = np.asarray(grid.origin)
    return origin + idx[:, ::-1] * np.asarray(grid.spacing[::-1])  # (x, y, z) mm, identity direction


def test_known_affine_and_warp_are_recovered(pair):
    reg, truth = pair["reg"], pair["truth"]
    assert not reg.qc["failed"], reg.qc["reason"]
    points = _lung_points(pair["lungs"], pair["grid"])
    err = np.array(
        [np.linalg.norm(np.subtract(reg.transform.TransformPoint(p), truth.TransformPoint(p))) for p in points]
    )
    moved = np.array([np.linalg.norm(np.subtract(truth.TransformPoint(p), p)) for p in points])
    assert np.median(moved) > 5.0  # the pair needs registering
    affine_err = [np.linalg.norm(np.subtract(reg.affine.TransformPoint(p), truth.TransformPoint(p))) for p in points]
    assert np.median(err) < 1.0, np.median(err)
    assert np.percentile(err, 95) < 2.0, np.percentile(err, 95)
    assert np.median(err) < np.median(affine_err)  # the deformable stage adds to the affine one
    # inside the new lesion (follow-up points mapped back to the baseline by the known transform's inverse)
    grid = pair["grid"]
    inside = [
        pair["inverse"].TransformPoint(tuple(p)) for p in _lung_points(pair["lesion"].astype(np.uint8), grid, 300)
    ]
    lesion_err = [np.linalg.norm(np.subtract(reg.transform.TransformPoint(p), truth.TransformPoint(p))) for p in inside]
    assert np.median(lesion_err) < 1.0, np.median(lesion_err)
    assert reg.qc["dice"] > 0.95
    assert reg.qc["dice"] >= reg.qc["dice_affine"]
    assert 0 < reg.qc["jacobian_min"] < 1 < reg.qc["jacobian_max"] < 2
    assert reg.qc["folded_pct"] == 0


def test_transforms_round_trip_through_files(pair, tmp_path):
    reg = pair["reg"]
    paths = reg.save(tmp_path / "pair")
    assert [p.name for p in paths] == list(TRANSFORM_FILES)
    loaded = load_transform(tmp_path / "pair")
    for p in _lung_points(pair["lungs"], pair["grid"], 200):
        np.testing.assert_allclose(loaded.TransformPoint(p), reg.transform.TransformPoint(p), atol=1e-6)
    grid = pair["grid"]
    np.testing.assert_array_equal(
        warp(pair["follow_lungs"], grid, grid, loaded, kind="nearest"),
        reg.warp(pair["follow_lungs"], grid, kind="nearest"),
    )


def test_missing_transform_file_names_it(pair, tmp_path):
    pair["reg"].save(tmp_path)
    (tmp_path / "deformable.h5").write_text("not a transform\n")
    with pytest.raises(InputError, match="deformable.h5"):
        load_transform(tmp_path)
    (tmp_path / "affine.tfm").unlink()
    with pytest.raises(InputError, match="affine.tfm"):
        load_transform(tmp_path)


def test_warp_follow_up_brings_labels_back_onto_the_baseline(pair):
    grid = pair["grid"]
    opacity = np.zeros(SHAPE, np.uint8)
    opacity[(pair["follow_lungs"] > 0) & (pair["follow_hu"] > -600)] = 3
    hu, lungs, op = warp_follow_up(pair["reg"], grid, pair["follow_hu"], pair["follow_lungs"], opacity)
    assert hu.dtype == np.int16 and lungs.dtype == np.uint8 and op.dtype == np.uint8
    assert set(np.unique(lungs)) <= {0, 1, 2} and set(np.unique(op)) <= {0, 3}
    base = pair["lungs"]
    dice = 2 * np.count_nonzero((lungs > 0) & (base > 0)) / (np.count_nonzero(lungs) + np.count_nonzero(base))
    assert dice > 0.95
    assert np.count_nonzero(lungs[base == 1] == 2) < 0.01 * np.count_nonzero(base == 1)  # right stays right
    assert np.median(np.abs(hu[base > 0].astype(float) - pair["hu"][base > 0])) < 60


def test_same_transform_and_labels_on_one_and_two_threads(pair):
    """A SLURM job may get another number of threads than a local run: the transform, the warped labels and the
    change labels are the same, byte for byte, on one thread and on two."""
    grid, base_lungs = pair["grid"], pair["lungs"]
    runs = []
    for threads in (1, 2):
        reg = register(
            pair["hu"], base_lungs, SPACING, pair["follow_hu"], pair["follow_lungs"], SPACING, fixed_origin=ORIGIN,
            moving_origin=ORIGIN, moving_opacity=pair["opacity"], demons_iterations=(10, 5), threads=threads,
        )
        _, lungs, opacity = warp_follow_up(reg, grid, pair["follow_hu"], pair["follow_lungs"], pair["opacity"])
        runs.append(
            {
                "affine": np.asarray(reg.affine.GetParameters()).tobytes(),
                "field": sitk.GetArrayFromImage(reg.deformable.GetDisplacementField()).tobytes(),
                "labels": change.change_labels(base_lungs, np.zeros_like(base_lungs), lungs, opacity).tobytes(),
            }
        )
    for key in runs[0]:
        assert runs[0][key] == runs[1][key], f"{key} differs between 1 and 2 threads"


def test_folding_and_poor_overlap_are_flagged(pair):
    grid = pair["grid"]
    cell = 4.0
    size = [int(np.ceil((n - 1) * s / cell)) + 2 for n, s in zip(reversed(SHAPE), reversed(SPACING))]
    xs = np.arange(size[0]) * cell
    field = np.zeros((size[2], size[1], size[0], 3))
    field[..., 0] = 8.0 * np.sin(xs / 4.0)  # d(dx)/dx down to -2: space turned inside out
    img = sitk.GetImageFromArray(field, isVector=True)
    img.SetSpacing((cell,) * 3)
    img.SetOrigin(grid.origin)
    folding = sitk.DisplacementFieldTransform(img)
    qc = assess(folding, pair["lungs"], grid, pair["lungs"], grid)
    assert qc["failed"] and qc["jacobian_min"] < 0 < qc["folded_pct"]
    assert "folds space" in qc["reason"]
    shifted = sitk.TranslationTransform(3, (60.0, 0.0, 0.0))
    qc = assess(shifted, pair["lungs"], grid, pair["lungs"], grid)
    assert qc["failed"] and qc["dice"] < 0.9 and "Dice" in qc["reason"]
    assert not assess(sitk.Transform(3, sitk.sitkIdentity), pair["lungs"], grid, pair["lungs"], grid)["failed"]


def test_empty_lungs_and_bad_shapes_are_refused():
    hu, lungs = _chest()
    with pytest.raises(InputError, match="follow-up lungs"):
        register(hu, lungs, SPACING, hu, np.zeros_like(lungs), SPACING)
    with pytest.raises(ValueError, match="moving_lungs"):
        register(hu, lungs, SPACING, hu, lungs[:-1], SPACING)
