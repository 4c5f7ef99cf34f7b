"""quantify: excluded scans, one generated scan end to end (also with a lesion mask), the QC picture. The folders'
hand-over (``imaging._handover``) is in test_handover.py."""

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from lungtrial.errors import InputError, ScanExcluded
from lungtrial.imaging.quantify import OUTPUTS, ScanResult, quantify_scan


def test_excluded_series_writes_status_row(tmp_path):
    series = {"scan_id": "S1", "status": "excluded", "reasons": ["S1: series has 12 slices; expected at least 20"]}
    result = quantify_scan(tmp_path, "S1", tmp_path / "out", series=series, title="P01 day 0")
    assert result.status == "excluded" and result.regions.empty
    row = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert row.loc[0, "scan_id"] == "S1" and row.loc[0, "status"] == "excluded"
    assert "12 slices" in row.loc[0, "exclusion_reason"]
    assert "pct_opacity" in row.columns and np.isnan(row.loc[0, "pct_opacity"])
    regions = pd.read_csv(tmp_path / "out" / "regions.csv")
    assert len(regions) == 0 and "involvement_score" in regions.columns
    assert (tmp_path / "out" / "qc.png").stat().st_size > 0
    assert list((tmp_path / "out" / "masks").iterdir()) == []
    assert json.loads((tmp_path / "out" / "series.json").read_text()) == series
    with pytest.raises(ScanExcluded, match="12 slices"):
        quantify_scan(tmp_path, "S1", tmp_path / "strict", series=series, strict=True)
    assert list((tmp_path / "strict").iterdir()) == []  # strict: nothing written


def test_empty_folder_is_excluded(tmp_path):
    (tmp_path / "dicom").mkdir()
    result = quantify_scan(tmp_path / "dicom", "S2", tmp_path / "out")
    assert result.status == "excluded" and result.exclusion_reason
    assert json.loads((tmp_path / "out" / "series.json").read_text())["status"] == "excluded"


def test_unknown_preset(tmp_path):
    with pytest.raises(InputError, match="preset"):
        quantify_scan(tmp_path, "S1", tmp_path / "out", series={}, preset="lung")


@pytest.fixture(scope="module")
def demo_scan(tmp_path_factory):
    from lungtrial.demo import design, write_scan

    root = tmp_path_factory.mktemp("demo")
    trial = design(n_per_arm=1, timepoints=(0, 7))
    scan_id = trial.scans["scan_id"].iloc[1]
    truth = write_scan(trial, scan_id, root / "dicom", root / "truth", size="tiny")
    return root, scan_id, truth


def test_generated_scan_end_to_end(demo_scan, tmp_path):
    root, scan_id, truth = demo_scan
    result = quantify_scan(root / "dicom", scan_id, tmp_path, title="P01 day 7")
    assert isinstance(result, ScanResult)
    assert result.status == "ok", result.exclusion_reason
    assert set(result.timings) == {"read", "segment", "measure", "write", "total"}
    # the final layout, each file written once, nothing else left (no workspace, lock or temporary file)
    assert result.outputs == OUTPUTS
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(OUTPUTS)
    for name in OUTPUTS:
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "series.json").read_text()) == result.series
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "regions.csv"), result.regions, check_dtype=False)

    row = pd.read_csv(tmp_path / "metrics.csv").iloc[0]
    assert row["scan_id"] == scan_id and row["status"] == "ok"
    assert row["lung_volume_ml"] == pytest.approx(truth["lung_volume_ml"], rel=0.1)
    assert row["right_lung_ml"] + row["left_lung_ml"] == pytest.approx(row["lung_volume_ml"])
    regions = pd.read_csv(tmp_path / "regions.csv")
    assert len(regions) == 6 and regions["lung_volume_ml"].sum() == pytest.approx(row["lung_volume_ml"])
    assert row["severity_score"] == regions["involvement_score"].sum()

    # masks lie on the CT grid in physical space: same geometry as the generator's truth masks
    lungs = sitk.ReadImage(str(tmp_path / "masks/lungs.nii.gz"))
    ref = sitk.ReadImage(str(root / "truth" / f"{scan_id}_lungs.nii.gz"))
    assert lungs.GetSize() == ref.GetSize()
    assert np.allclose(lungs.GetSpacing(), ref.GetSpacing(), rtol=1e-4)
    assert np.allclose(lungs.GetOrigin(), ref.GetOrigin(), atol=1e-2)
    seg, true = sitk.GetArrayFromImage(lungs), sitk.GetArrayFromImage(ref)
    assert set(np.unique(seg)) == {0, 1, 2}
    assert 2 * ((seg == 1) & (true == 1)).sum() / ((seg == 1).sum() + (true == 1).sum()) > 0.85  # right is right
    # the metrics agree with the opacity mask written
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "masks/opacity.nii.gz")))
    n_lung = (seg > 0).sum()
    assert row["pct_opacity"] == pytest.approx(100 * np.isin(labels, (1, 2)).sum() / n_lung)
    assert row["vessel_ml"] == pytest.approx((labels == 3).sum() * row["lung_volume_ml"] / n_lung)

    # no patient identifier anywhere in the outputs
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for ident in truth["planted_identifiers"]:
            assert ident.encode() not in data, (path.name, "planted identifier")


def test_lesion_mask_from_file(demo_scan, tmp_path):
    root, scan_id, truth = demo_scan
    mask = root / "truth" / f"{scan_id}_lesions.nii.gz"
    result = quantify_scan(root / "dicom", scan_id, tmp_path, lesion_mask=mask, preset="radiology")
    row = result.metrics
    assert row["opacity_source"] == "lesion_mask"
    lesion = sitk.GetArrayFromImage(sitk.ReadImage(str(mask))) > 0
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "masks/lungs.nii.gz"))) > 0
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "masks/opacity.nii.gz")))
    expected = (lesion & seg & (labels != 3)).sum()
    assert row["opacity_ml"] == pytest.approx(expected * row["lung_volume_ml"] / seg.sum())
    short = tmp_path / "short.nii.gz"
    img = sitk.ReadImage(str(mask))
    sitk.WriteImage(img[:, :, : img.GetSize()[2] // 2], str(short))
    with pytest.raises(InputError, match="short.nii.gz"):
        quantify_scan(root / "dicom", scan_id, tmp_path / "bad", lesion_mask=short)


def test_failure_after_the_lung_mask_was_started_leaves_the_folder_as_it_was(demo_scan, tmp_path, monkeypatch):
    from lungtrial.imaging import segmentation as segment

    root, scan_id, _ = demo_scan
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks/opacity.nii.gz").write_bytes(b"from an earlier run")

    def broken(*args, **kwargs):
        raise RuntimeError("vessel segmentation broke")

    monkeypatch.setattr(segment, "segment_vessels", broken)
    with pytest.raises(RuntimeError, match="broke"):
        quantify_scan(root / "dicom", scan_id, tmp_path)
    # no lung mask of the failed run, no workspace, lock or temporary file; the earlier run's files are kept
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["masks", "masks/opacity.nii.gz"]
    assert (tmp_path / "masks/opacity.nii.gz").read_bytes() == b"from an earlier run"


def test_given_series_reads_the_same_as_ingest_here(demo_scan, tmp_path):
    root, scan_id, _ = demo_scan
    here = quantify_scan(root / "dicom", scan_id, tmp_path / "a")
    series = json.loads((tmp_path / "a" / "series.json").read_text())
    given = quantify_scan(root / "dicom", scan_id, tmp_path / "b", series=series)
    assert given.metrics == pytest.approx(here.metrics, nan_ok=True)
    assert (tmp_path / "b" / "series.json").read_bytes() == (tmp_path / "a" / "series.json").read_bytes()
    for name in ("masks/lungs.nii.gz", "masks/opacity.nii.gz"):
        a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / d / name))) for d in "ab")
        assert (a == b).all(), name


def test_qc_figure_png(tmp_path):
    from matplotlib.image import imread

    from lungtrial.imaging.qc import qc_figure

    hu = np.full((20, 40, 60), 40, dtype=np.int16)
    lungs = np.zeros(hu.shape, dtype=np.uint8)
    lungs[3:17, 8:32, 5:28] = 1
    lungs[3:17, 8:32, 32:55] = 2
    hu[lungs > 0] = -850
    opacity = np.zeros(hu.shape, dtype=np.uint8)
    opacity[5:9, 20:30, 8:15] = 1
    opacity[6:8, 24:28, 10:13] = 2
    qc_figure(hu, lungs, opacity, (5.0, 0.7, 0.7), "P01  day 7", tmp_path / "qc.png")
    image = imread(tmp_path / "qc.png")
    assert image.shape[0] > 600 and image.shape[1] > 1200


def _qc_phantom():
    hu = np.full((30, 64, 80), 40, dtype=np.int16)
    lungs = np.zeros(hu.shape, dtype=np.uint8)
    lungs[2:28, 10:54, 6:38] = 1
    lungs[2:28, 10:54, 42:74] = 2
    hu[lungs > 0] = -850
    opacity = np.zeros(hu.shape, dtype=np.uint8)
    opacity[2:28, 20:40, 10:30] = 1  # right lung only, through every level shown
    opacity[2:28, 25:35, 15:25] = 2
    opacity[2:28, 44:48, 50:60] = 3
    return hu, lungs, opacity


def _rgb_of(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


def test_qc_figure_draws_classes_outline_and_levels(tmp_path):
    from PIL import Image

    from lungtrial.imaging.qc import COLOURS, OVERLAY_ALPHA, SOFT_TISSUE_WINDOW, qc_figure

    hu, lungs, opacity = _qc_phantom()
    qc_figure(hu, lungs, opacity, (2.0, 0.7, 0.7), "P01  day 7", tmp_path / "qc.png", dpi=100)
    image = np.asarray(Image.open(tmp_path / "qc.png").convert("RGB")).astype(int)
    assert image.shape[1] == 1200 and 500 < image.shape[0] < 1000

    def count(colour, part=image) -> int:
        return int((np.abs(part - np.asarray(colour)).max(axis=2) <= 2).sum())

    # top row: lung window with the opacity classes; bottom row: soft-tissue window, outline only
    panels = image[: -round(0.4 * 100)]  # above the legend
    bands = np.flatnonzero((np.abs(panels - _rgb_of(COLOURS["outline"])).max(axis=2) <= 2).any(axis=1))
    middle = (bands[0] + bands[-1]) // 2
    top, bottom = image[:middle], image[middle:]
    grey = 255 * (-850 + 1350) / 1500  # lung window
    for label in (1, 2, 3):
        blended = [round((1 - OVERLAY_ALPHA) * grey + OVERLAY_ALPHA * c) for c in _rgb_of(COLOURS[label])]
        assert count(blended, top) > 200, label  # three axial slices, the coronal and the sagittal slices
        assert count(blended, bottom) == 0, label
    outline = _rgb_of(COLOURS["outline"])
    assert count(outline, top) > 500 and count(outline, bottom) > 500
    lo, hi = SOFT_TISSUE_WINDOW
    soft = round(255 * (40 - lo) / (hi - lo))  # 40 HU: mid grey in the soft-tissue window, white in the lung window
    assert count([soft] * 3, bottom) > 2000 and count([soft] * 3, top) < 300  # (anti-aliased text only)
    assert count([0, 0, 0], bottom) > 2000  # aerated lung is black in the soft-tissue window
    # radiological convention: the right lung (with the opacity) is on the left of the first axial image
    axial = top[:, : int(0.17 * image.shape[1])]
    yellow = (np.abs(axial - [round(0.5 * grey + 0.5 * c) for c in (240, 228, 66)]).max(axis=2) <= 2).nonzero()
    lung_pixels = (np.abs(axial - round(grey)).max(axis=2) <= 2).nonzero()
    assert yellow[1].size > 100 and np.median(yellow[1]) < np.median(lung_pixels[1]) - 20


def test_qc_slices_show_the_bases_and_each_lung_sagittally():
    from lungtrial.imaging.qc import AXIAL_LEVELS, _levels, _sagittal

    present = np.zeros(100, bool)
    present[10:91] = True  # lungs in slices 10-90
    levels = _levels(present)
    assert len(levels) == len(AXIAL_LEVELS) and levels == sorted(levels, reverse=True)
    assert any(10 + 0.15 * 80 <= z <= 10 + 0.25 * 80 for z in levels)  # the bases: 15-25 % of the height
    opaque = np.zeros(200, np.int64)
    assert _sagittal(np.arange(20, 101), opaque) == 60  # no opacity: the lung's middle
    opaque[25] = 50  # lateral edge: outside the middle half
    opaque[70] = 10
    assert _sagittal(np.arange(20, 101), opaque) == 70
    assert _sagittal(np.zeros(0, np.intp), opaque) is None


def test_qc_figure_is_deterministic_and_shows_warnings(tmp_path):
    from PIL import Image

    from lungtrial.imaging.qc import COLOURS, qc_figure

    hu, lungs, opacity = _qc_phantom()
    args = (hu, lungs, opacity, (2.0, 0.7, 0.7), "P01  day 7")
    qc_figure(*args, tmp_path / "a.png", dpi=100)
    qc_figure(*args, tmp_path / "b.png", dpi=100)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    warning = "implausible lungs: no trachea: " + "the longest air tube runs 0 mm " * 20  # longer than the picture
    qc_figure(*args, tmp_path / "w.png", dpi=100, warnings=[warning])
    plain = np.asarray(Image.open(tmp_path / "a.png").convert("RGB")).astype(int)
    warned = np.asarray(Image.open(tmp_path / "w.png").convert("RGB")).astype(int)
    assert warned.shape[1] == plain.shape[1] and warned.shape[0] > plain.shape[0]
    vermillion = (np.abs(warned[:80] - _rgb_of(COLOURS[2])).max(axis=2) <= 8).nonzero()
    assert vermillion[0].size > 50 and 10 < vermillion[1].min() and vermillion[1].max() < warned.shape[1] - 10


def test_qc_colours_from_the_lookup_table_equal_per_pixel_arithmetic():
    from lungtrial.imaging.qc import _rgb

    rng = np.random.default_rng(5)
    hu = rng.integers(-1400, 600, (30, 40)).astype(np.int16)
    hu[0, 0], hu[0, 1] = -32768, 32767
    lungs = rng.integers(0, 3, hu.shape).astype(np.uint8)
    opacity = rng.integers(0, 5, hu.shape).astype(np.uint8)  # 4: not a class, drawn grey
    per_pixel = _rgb(hu.astype(np.float32), lungs, opacity)  # float HU: computed pixel by pixel
    assert per_pixel.dtype == np.uint8 and (_rgb(hu, lungs, opacity) == per_pixel).all()


def test_missing_folder_still_writes_series_json(tmp_path):
    result = quantify_scan(tmp_path / "nowhere", "S3", tmp_path / "out")
    assert result.status == "excluded" and "does not exist" in result.exclusion_reason
    series = json.loads((tmp_path / "out" / "series.json").read_text())
    assert series["status"] == "excluded" and "does not exist" in series["reasons"][0]


def test_one_thread_gives_the_same_outputs(demo_scan, tmp_path):
    root, scan_id, _ = demo_scan
    for threads in (1, 2):
        result = quantify_scan(root / "dicom", scan_id, tmp_path / str(threads), threads=threads)
        assert result.status == "ok"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "1/metrics.csv"), pd.read_csv(tmp_path / "2/metrics.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "1/regions.csv"), pd.read_csv(tmp_path / "2/regions.csv"))
    for name in ("masks/lungs.nii.gz", "masks/opacity.nii.gz"):
        one, two = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / t / name))) for t in ("1", "2"))
        assert np.array_equal(one, two), name


def test_lungs_cut_by_the_field_of_view_are_flagged():
    from simple_chest import make_simple_chest

    from lungtrial.imaging.quantify import analyse_volume, field_of_view_warnings

    c = make_simple_chest(spacing=(3.0, 2.0, 2.0), lesions=False, seed=3)
    assert field_of_view_warnings(c.lungs) == []
    xs = np.flatnonzero((c.lungs == 1).any(axis=(0, 1)))  # the right lung lies at low x
    cut = np.ascontiguousarray(c.hu[:, :, xs[0] + 5 :])  # the field of view ends 10 mm inside the right lung
    result = analyse_volume(cut, c.spacing)
    assert len(result["warnings"]) == 1
    assert result["warnings"][0].startswith("right lung reaches the image edge in ")
    assert "not measured" in result["warnings"][0]


def lose_the_left_lung(monkeypatch):
    """Make the lung segmentation lose the left lung (label 2), as a failing segmentation might."""
    from lungtrial.imaging import segmentation

    real = segmentation.segment

    def one_lung(*args, **kwargs):
        found = real(*args, **kwargs)
        found.labels[found.labels == 2] = 0
        return found

    monkeypatch.setattr(segmentation, "segment", one_lung)


def test_implausible_lungs_exclude_the_scan_with_the_reason(demo_scan, tmp_path, monkeypatch):
    root, scan_id, _ = demo_scan
    lose_the_left_lung(monkeypatch)
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks/lungs.nii.gz").write_bytes(b"from an earlier run")
    result = quantify_scan(root / "dicom", scan_id, tmp_path)
    assert result.status == "excluded"
    row = pd.read_csv(tmp_path / "metrics.csv").iloc[0]
    assert row["status"] == "excluded"
    assert row["exclusion_reason"].startswith("implausible lungs: left lung missing: nothing labelled 2")
    assert list((tmp_path / "masks").iterdir()) == [] and (tmp_path / "qc.png").stat().st_size > 0
    from PIL import Image

    with Image.open(tmp_path / "qc.png") as picture:  # the slices with what was found, not a text card
        assert picture.size[0] >= 1500
    with pytest.raises(ScanExcluded, match="implausible lungs: left lung missing"):
        quantify_scan(root / "dicom", scan_id, tmp_path / "strict", strict=True)


def test_implausible_lungs_measured_with_a_warning_when_asked(demo_scan, tmp_path, monkeypatch):
    root, scan_id, _ = demo_scan
    lose_the_left_lung(monkeypatch)
    result = quantify_scan(root / "dicom", scan_id, tmp_path, measure_implausible=True)
    assert result.status == "ok"
    assert result.warnings[0].startswith("implausible lungs: left lung missing")
    row = pd.read_csv(tmp_path / "metrics.csv").iloc[0]
    assert row["status"] == "ok" and row["left_lung_ml"] == 0 and row["right_lung_ml"] > 0
    series = json.loads((tmp_path / "series.json").read_text())
    assert result.warnings[0] in series["warnings"]  # and so in the QC table and the report
    for name in ("masks/lungs.nii.gz", "masks/opacity.nii.gz", "qc.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_plausibility_of_given_lungs_in_analyse_volume(demo_scan):
    """analyse_volume judges given lungs too: the same image with its lungs' labels swapped is excluded."""
    from lungtrial.imaging import dicom
    from lungtrial.imaging.quantify import analyse_volume

    root, scan_id, _ = demo_scan
    series = dicom.ingest(root / "dicom", scan_id)
    vol = dicom.read_volume(root / "dicom", series)
    lungs = analyse_volume(vol.hu, vol.spacing)["lungs"]
    swapped = np.where(lungs > 0, 3 - lungs, 0).astype(np.uint8)
    with pytest.raises(ScanExcluded, match="implausible lungs: right lung's centre"):
        analyse_volume(vol.hu, vol.spacing, lungs=swapped)
    result = analyse_volume(vol.hu, vol.spacing, lungs=swapped, measure_implausible=True)
    assert any(w.startswith("implausible lungs: left lung's centre") for w in result["warnings"])


def test_lungs_cut_by_the_scans_range_are_flagged():
    """A scan that stops above the lungs' bases (or starts below their apices) measures part of them: a warning
    names the lung and the end; a lung tapering out within the scan is not flagged."""
    from lungtrial.imaging.quantify import RANGE_CUT_SHARE, field_of_view_warnings

    lungs = np.zeros((40, 32, 44), np.uint8)
    z = np.arange(40)[:, None, None]
    y, x = np.indices((32, 44))
    radius = 10 * np.sin(np.pi * (z + 0.5) / 40)  # each lung a spindle tapering to its ends
    lungs[((y - 16) ** 2 + (x - 11) ** 2 < radius**2)] = 1
    lungs[((y - 16) ** 2 + (x - 32) ** 2 < radius**2)] = 2
    assert field_of_view_warnings(lungs) == []
    top = field_of_view_warnings(lungs[:20])  # the scan ends half-way up the lungs
    assert len(top) == 2 and all("most superior slice with 100 %" in w and "cuts it above" in w for w in top)
    assert top[0].startswith("right lung")
    bottom = field_of_view_warnings(lungs[10:, :, :22])  # the right lung only, cut below
    assert len(bottom) == 1 and "most inferior slice" in bottom[0] and "cuts it below" in bottom[0]
    assert RANGE_CUT_SHARE < 0.5
