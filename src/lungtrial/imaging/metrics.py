"""Lung density and opacity metrics from HU volumes: HU classes, presets, per-scan and per-region metrics.

Conventions
-----------
- Volumes are ``(z, y, x)`` arrays; ``spacing`` is ``(dz, dy, dx)`` in mm. Axis 0 must increase towards the head
  (superior), as :func:`lungtrial.imaging.dicom.read_volume` guarantees; the upper/middle/lower zones depend on it.
- HU are integers (int16). Float input is rounded to the nearest integer HU.
- ``lungs`` is a label volume: 0 background, 1 right lung, 2 left lung.

HU classes
----------
A class ``HUClass(name, lower, upper)`` holds the voxels with ``lower < HU <= upper`` (lower bound exclusive, upper
bound inclusive; ``None`` means unbounded). So with the radiology preset -700 HU is normal and -300 HU is ground
glass, matching "normal <= -700, ground glass -700 to -300, consolidation > -300".

- ``radiology``: normal (<= -700), ground_glass (-700, -300], consolidation (> -300). Opacity = ground glass +
  consolidation. High opacity (reported separately, ``pct_high_opacity``) = HU > -200.
- ``ards`` (aeration compartments): hyperinflated (<= -900, so values below -1000 from noise are counted too),
  normally_aerated (-900, -500], poorly_aerated (-500, -100], non_aerated (-100, +100]. Voxels above +100 HU
  (calcification, contrast) fall in no compartment.

Vessels
-------
Vessel voxels (``vessels`` mask) belong to the lung: they count in the lung volume and in the density statistics
(mean, median, percentiles). They are reported as ``vessel_ml`` and are excluded from every HU class, from opacity
and from high opacity, so for the radiology preset ``normal + ground_glass + consolidation + vessel = lung``.

Partial volume
--------------
Optional ``not_opacity`` voxels (e.g. :func:`lungtrial.imaging.segmentation.opacity_exclusion`: the pleural rim next to aerated
lung and the halo around vessels, whose HU are raised by partial volume) never count as ground glass, consolidation
or high opacity; outside vessels they count as normal lung. The ARDS compartments and custom classes use their HU.

Lesion mask
-----------
A binary lesion mask (non-zero = lesion), when given, replaces the HU thresholds for the extent of opacity: lung
voxels inside the mask (and not vessel) are opacity, all other non-vessel lung voxels are normal. Inside the
lesion the ground glass / consolidation split and high opacity still use HU (-300 and -200 HU); ``not_opacity`` is
ignored. The ARDS compartments and custom classes always use HU.

Regions
-------
Each lung is split into upper, middle and lower zones by thirds of its own craniocaudal extent: the slices from the
lung's lowest to its highest slice containing that lung are divided into three equal lengths, and each slice goes
to the zone that holds its centre. Regions: ``right_upper, right_middle, right_lower, left_upper, left_middle,
left_lower``. A region's involvement score from its percentage of opacity ``p``: 0 for ``p < none_below_pct``
(default 1 %, the partial-volume background that HU thresholds always find in healthy lungs), 1 for ``p < 25``,
2 for ``25 <= p < 50``, 3 for ``50 <= p < 75``, 4 for ``p >= 75``. ``severity_score`` (0-24) sums the six.

Lesions
-------
A lesion is a connected component of opacity (ground glass or consolidation, the radiology preset's labels 1 and 2
of :func:`opacity_labels`; vessels are not opacity), voxels joined by a face, an edge or a corner (26-connectivity).
Per scan: ``n_lesions`` and ``largest_lesion_ml`` (:func:`lesion_metrics`). Without a lesion mask, ``n_lesions``
counts the components of at least :data:`MIN_LESION_ML`: the opacity read from HU is blob-like (it holds a ball of
4 mm radius, 0.27 mL; :func:`lungtrial.imaging.segmentation.opacity_exclusion`), so a smaller piece is part of a
lesion's edge that noise or partial volume cut off at voxel level, most of all on sharp kernels. Its voxels count in
every volume and percentage all the same. With a lesion mask, every component of it is a lesion.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lungtrial.errors import InputError
from lungtrial.memory import new_volume


@dataclass(frozen=True)
class HUClass:
    """Voxels with ``lower < HU <= upper`` (HU; ``None`` = unbounded)."""

    name: str
    lower: float | None
    upper: float | None

    def __post_init__(self):
        if not self.name.isidentifier():
            raise InputError(f"HU class name {self.name!r}: expected a name made of letters, digits and '_'")
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise InputError(f"HU class {self.name!r}: expected lower < upper, got {self.lower} and {self.upper}")

    def bin_range(self) -> tuple[int, int]:
        """Half-open range ``[start, stop)`` of histogram bins (offset ``HU + 32768``) inside the class."""
        start = 0 if self.lower is None else int(np.clip(np.floor(self.lower) + 1 + _OFFSET, 0, _NBINS))
        stop = _NBINS if self.upper is None else int(np.clip(np.floor(self.upper) + 1 + _OFFSET, 0, _NBINS))
        return start, max(start, stop)


PRESETS: dict[str, tuple[HUClass, ...]] = {
    "radiology": (
        HUClass("normal", None, -700),
        HUClass("ground_glass", -700, -300),
        HUClass("consolidation", -300, None),
    ),
    "ards": (
        HUClass("hyperinflated", None, -900),
        HUClass("normally_aerated", -900, -500),
        HUClass("poorly_aerated", -500, -100),
        HUClass("non_aerated", -100, 100),
    ),
}
#: The two classes of each preset drawn as labels 1 and 2 in opacity masks and QC pictures.
OPACITY_CLASSES: dict[str, tuple[str, str]] = {
    "radiology": ("ground_glass", "consolidation"),
    "ards": ("poorly_aerated", "non_aerated"),
}
HIGH_OPACITY = HUClass("high_opacity", -200, None)
#: mL. The smallest connected piece of opacity read from HU that ``n_lesions`` counts as a lesion (about a sphere
#: 6 mm across): in the measurement such opacity holds a ball of 4 mm radius (0.27 mL), and what is smaller is a
#: piece of a lesion's edge cut off at voxel level; more than the few voxels of noise that make a sharp kernel's
#: pieces, less than the ball, as a lesion's voxels above -700 HU may fill only part of it.
MIN_LESION_ML = 0.1
REGIONS = ("right_upper", "right_middle", "right_lower", "left_upper", "left_middle", "left_lower")
PERCENTILES = (5, 10, 15, 25, 75, 85, 90, 95)

_OFFSET = 32768  # int16 HU -> histogram bin
_NBINS = 65536
_GGO, _CONS = PRESETS["radiology"][1], PRESETS["radiology"][2]
_RESERVED = {
    "normal",
    "ground_glass",
    "consolidation",
    "opacity",
    "high_opacity",
    "vessel",
    "lung_volume",
    "right_lung",
    "left_lung",
} | {c.name for c in PRESETS["ards"]}


def hu_classes(spec: Iterable[Mapping]) -> tuple[HUClass, ...]:
    """Custom HU classes from a config list of ``{name, lower, upper}`` (HU; ``lower``/``upper`` may be absent).

    Raises :class:`~lungtrial.errors.InputError` for a malformed entry, a duplicate name or a name that collides
    with the built-in columns.
    """
    classes = []
    for i, item in enumerate(spec):
        if not isinstance(item, Mapping) or "name" not in item or set(item) - {"name", "lower", "upper"}:
            raise InputError(f"HU class #{i + 1}: expected keys name, lower, upper; got {item!r}")
        bounds = [item.get("lower"), item.get("upper")]
        for b in bounds:
            if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float))):
                raise InputError(f"HU class {item['name']!r}: bounds must be numbers (HU) or null, got {b!r}")
        cls = HUClass(str(item["name"]), *bounds)
        if cls.name in _RESERVED or cls.name in {c.name for c in classes}:
            raise InputError(f"HU class {cls.name!r}: name already used; expected a new name")
        classes.append(cls)
    return tuple(classes)


def involvement_score(pct_opacity: float, none_below_pct: float = 1.0) -> int:
    """Region involvement 0-4 from its percentage of opacified volume (see module docstring)."""
    if not np.isfinite(pct_opacity) or pct_opacity < none_below_pct:
        return 0
    return 1 + int(min(pct_opacity, 100.0) >= 25) + int(pct_opacity >= 50) + int(pct_opacity >= 75)


def _as_hu(hu: np.ndarray) -> np.ndarray:
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"hu: expected a 3-D (z, y, x) volume, got shape {hu.shape}")
    if np.issubdtype(hu.dtype, np.floating):
        return np.clip(np.rint(hu), -32768, 32767).astype(np.int16)
    if hu.dtype != np.int16:
        return np.clip(hu, -32768, 32767).astype(np.int16)
    return hu


def _checked(hu, lungs, vessels, lesion_mask, not_opacity) -> tuple:
    """The volume in HU and the four masks, each checked against its shape."""
    hu = _as_hu(hu)
    return (
        hu,
        _check_mask("lungs", lungs, hu.shape),
        _check_mask("vessels", vessels, hu.shape),
        _check_mask("lesion_mask", lesion_mask, hu.shape),
        _check_mask("not_opacity", not_opacity, hu.shape),
    )


def _check_spacing(spacing) -> None:
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing: expected three positive voxel sizes (dz, dy, dx) in mm, got {spacing}")


def _check_mask(name: str, mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (the CT grid), got {mask.shape}")
    return mask


def _lung_labels(lungs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lungs`` as uint8 labels (a view when it already is one) and the largest label of each slice; raises
    ``ValueError`` for labels other than 0, 1 and 2."""
    error = ValueError("lungs: expected labels 0 (background), 1 (right lung), 2 (left lung)")
    if lungs.dtype == bool:
        lungs = lungs.view(np.uint8)
    elif lungs.dtype != np.uint8:
        if lungs.size and (lungs.min() < 0 or lungs.max() > 2):
            raise error
        lungs = lungs.astype(np.uint8)
    top = lungs.reshape(lungs.shape[0], -1).max(axis=1) if lungs.size else np.zeros(lungs.shape[0], np.uint8)
    if top.size and top.max() > 2:
        raise error
    return lungs, top


def _lung_zones(lungs: np.ndarray, top: np.ndarray) -> tuple[int, int, tuple[slice, slice], np.ndarray] | None:
    """The slices ``z0:z1`` holding lung, the (rows, columns) box holding the lungs on them and :func:`_zone_lut`,
    from the uint8 labels and their largest label per slice ``top`` (:func:`_lung_labels`); None without lung."""
    zs = np.flatnonzero(top)
    if not zs.size:
        return None
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    footprint = lungs[z0:z1].max(axis=0)
    ys, xs = np.flatnonzero(footprint.any(axis=1)), np.flatnonzero(footprint.any(axis=0))
    box = (slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1))
    return z0, z1, box, _zone_lut(lungs, top, box)


def region_map(lungs: np.ndarray) -> np.ndarray:
    """Region index (0-5, :data:`REGIONS`) of every lung voxel, -1 elsewhere (int8), as the per-region metrics
    count them; ``lungs``: (z, y, x) labels 0, 1 right, 2 left."""
    labels, top = _lung_labels(np.asarray(lungs))
    out = np.full(labels.shape, -1, np.int8)
    zones = _lung_zones(labels, top)
    if zones is None:
        return out
    z0, z1, _, lut = zones
    for z in range(z0, z1):
        inside = labels[z] > 0
        out[z][inside] = lut[z][labels[z][inside]]
    return out


def _zone_lut(lungs: np.ndarray, top: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    """``lut[z, label]`` -> region index 0-5 (``REGIONS``) for labels 1 (right) and 2 (left), 0 elsewhere, from
    the uint8 labels, their largest label per slice ``top`` and the (rows, columns) box holding all of them."""
    nz = lungs.shape[0]
    present = np.zeros((nz, 3), dtype=bool)
    present[:, 2] = top == 2
    present[:, 1] = top == 1
    both = np.flatnonzero(top == 2)  # slices whose largest label is 2 may hold label 1 too
    if both.size:
        for z in range(int(both[0]), int(both[-1]) + 1, 16):  # a few slices at a time: small temporaries
            has_right = (lungs[z : z + 16, box[0], box[1]] == 1).any(axis=(1, 2))
            present[z : z + 16, 1] |= has_right & present[z : z + 16, 2]
    lut = np.zeros((nz, 3), dtype=np.int64)
    for side in (0, 1):
        zs = np.flatnonzero(present[:, side + 1])
        if zs.size == 0:
            continue
        z0, n = zs[0], zs[-1] - zs[0] + 1
        third = np.floor(3 * (np.arange(nz) - z0 + 0.5) / n).clip(0, 2).astype(np.int64)  # 0 lower .. 2 upper
        lut[:, side + 1] = side * 3 + (2 - third)
    return lut


def _label_lut(preset: str, lesion: bool) -> np.ndarray:
    """Opacity label (uint8 0, 1 or 2) of every int16 HU (index ``HU + 32768``) for eligible lung voxels."""
    if preset == "radiology" and lesion:
        first, second = HUClass("_", None, _GGO.upper), HUClass("_", _CONS.lower, None)
    else:
        by_name = {c.name: c for c in PRESETS[preset]}
        first, second = (by_name[n] for n in OPACITY_CLASSES[preset])
    lut = np.zeros(_NBINS, dtype=np.uint8)
    for label, cls in ((1, first), (2, second)):
        start, stop = cls.bin_range()
        lut[start:stop] = label
    return lut


def _runs(lut: np.ndarray, z0: int, z1: int, chunk: int) -> list[tuple[int, int]]:
    """Slabs ``[a, b)`` of at most ``chunk`` slices within ``[z0, z1)`` over which both lungs' regions are fixed."""
    cuts = [z0, *(z for z in range(z0 + 1, z1) if (lut[z] != lut[z - 1]).any()), z1]
    return [(z, min(z + chunk, stop)) for start, stop in itertools.pairwise(cuts) for z in range(start, stop, chunk)]


def _slab(hu, lungs, masks, preset, cut, regions, labels_of, hist, out) -> None:
    """Histograms (added to ``hist``) and opacity labels (written into ``out`` unless None) of the lung voxels
    of one slab ``cut`` (z, y, x slices) of :func:`_lung_pass`; ``regions[label]`` is the region of either lung
    throughout the slab."""
    vessels, lesion, guard = masks
    lab = np.ascontiguousarray(lungs[cut])
    shape = lab.shape
    lab = lab.reshape(-1)
    idx = np.flatnonzero(lab != 0)
    if idx.size == 0:
        return
    side = lab[idx]
    values = np.ascontiguousarray(hu[cut]).reshape(-1)[idx]
    vessel, les, grd = (
        None if m is None else np.ascontiguousarray(m[cut]).reshape(-1)[idx].astype(bool, copy=False) for m in masks
    )
    flag = les if lesion is not None else grd
    # code: (side - 1) * 3 + category; category 0 plain, 1 flagged (lesion, or guard when there is no lesion
    # mask) and not vessel, 2 vessel
    code = side - np.uint8(1)
    code *= np.uint8(3)
    if vessel is not None:
        code += vessel
        code += vessel
    if flag is not None:
        code += flag if vessel is None else flag & ~vessel
    low, high = int(values.min()), int(values.max())
    span = high - low + 1
    hu_bin = values.astype(np.intp)
    hu_bin -= low  # 0 .. span - 1
    key = code.astype(np.intp)
    key *= span
    key += hu_bin
    counts = np.bincount(key, minlength=6 * span).reshape(2, 3, span)
    for s in (0, 1):
        r = int(regions[s + 1])
        hist[r * 3 : r * 3 + 3, low + _OFFSET : low + _OFFSET + span] += counts[s]
    if out is None:
        return
    labels = labels_of[low + _OFFSET : low + _OFFSET + span][hu_bin]
    if lesion is not None and preset == "radiology":
        labels *= les
    elif preset == "radiology" and guard is not None:
        np.copyto(labels, 0, where=grd)
    if vessel is not None:
        np.copyto(labels, 3, where=vessel)
    dense = np.zeros(lab.size, dtype=np.uint8)
    dense[idx] = labels
    out[cut] = dense.reshape(shape)


def _lung_pass(
    hu, lungs, vessels, lesion, guard, preset: str | None, chunk: int = 16, threads: int | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """One pass over the lung voxels inside the lungs' bounding box, slab by slab (temporaries of a few MB).

    Returns the HU histograms ``(6 regions, 65536 bins)`` of all lung voxels, vessel voxels, non-vessel lesion
    voxels and non-vessel ``guard`` (not opacity) voxels, accumulated by one ``bincount`` per slab over lung side
    x category x HU (a slab never straddles a zone boundary), and the opacity label volume of ``preset`` (None
    when ``preset`` is None). Only the lung voxels of the masks are read; ``guard`` is ignored by the histograms
    when ``lesion`` is given. Slabs are shared among ``threads`` threads (default
    :func:`lungtrial.parallel.threads`; numpy releases the GIL in this work); the results do not depend on it.
    """
    lungs, top = _lung_labels(lungs)
    rows = len(REGIONS) * 3
    out = None if preset is None else new_volume(lungs.shape, np.uint8)  # only the lungs' box is written
    zones = _lung_zones(lungs, top)
    hists = []
    if zones is not None:
        z0, z1, box, lut = zones
        labels_of = None if out is None else _label_lut(preset, lesion is not None)
        masks = (vessels, lesion, guard if lesion is None else None)  # a lesion mask overrides the guard

        def work(slabs: list[tuple[int, int]]) -> np.ndarray:
            hist = np.zeros((rows, _NBINS), dtype=np.int64)
            for a, b in slabs:
                _slab(hu, lungs, masks, preset, (slice(a, b), *box), lut[a], labels_of, hist, out)
            return hist

        slabs = _runs(lut, z0, z1, chunk)
        if threads is None:
            from lungtrial.parallel import threads as allowed

            threads = allowed()
        parts = [slabs[i::threads] for i in range(min(threads, len(slabs)))]
        if len(parts) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(parts)) as pool:
                hists = list(pool.map(work, parts))
        else:
            hists = [work(p) for p in parts]
    hist = hists[0] if hists else np.zeros((rows, _NBINS), dtype=np.int64)
    for other in hists[1:]:
        hist += other
    h = hist.reshape(len(REGIONS), 3, _NBINS)
    zero = np.zeros((len(REGIONS), _NBINS), dtype=np.int64)
    histograms = {
        "all": h.sum(axis=1),
        "vessel": h[:, 2],
        "lesion": h[:, 1] if lesion is not None else zero,
        "guard": h[:, 1] if lesion is None and guard is not None else zero,
    }
    return histograms, out


def _percentile(cum: np.ndarray, n: int, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) from the cumulative histogram ``cum``."""
    pos = (n - 1) * q / 100.0
    k = int(np.floor(pos))
    lo = np.searchsorted(cum, k, side="right")
    hi = np.searchsorted(cum, min(k + 1, n - 1), side="right")
    return float(lo + (pos - k) * (hi - lo) - _OFFSET)


def _metrics(h_all, h_ves, h_les, h_guard, voxel_ml: float, classes: tuple[HUClass, ...], use_lesion: bool) -> dict:
    """Metrics of one histogram set (1-D arrays of 65536 bins)."""
    n = int(h_all.sum())
    row: dict = {"lung_volume_ml": n * voxel_ml}
    if n:
        cum = np.cumsum(h_all)
        row["mean_hu"] = float(np.dot(h_all, np.arange(_NBINS, dtype=np.int64) - _OFFSET) / n)
        row["median_hu"] = _percentile(cum, n, 50)
        for q in PERCENTILES:
            row[f"p{q}_hu"] = _percentile(cum, n, q)
    else:
        row |= {"mean_hu": np.nan, "median_hu": np.nan} | {f"p{q}_hu": np.nan for q in PERCENTILES}
    tissue = h_all - h_ves

    def count(h, cls):
        start, stop = cls.bin_range()
        return int(h[start:stop].sum())

    vols = {}
    if use_lesion:
        vols["ground_glass"] = count(h_les, HUClass("_", None, _GGO.upper))
        vols["consolidation"] = count(h_les, HUClass("_", _CONS.lower, None))
        vols["normal"] = int(tissue.sum()) - vols["ground_glass"] - vols["consolidation"]
        high = count(h_les, HIGH_OPACITY)
    else:
        eligible = tissue - h_guard
        vols["ground_glass"] = count(eligible, _GGO)
        vols["consolidation"] = count(eligible, _CONS)
        vols["normal"] = int(tissue.sum()) - vols["ground_glass"] - vols["consolidation"]
        high = count(eligible, HIGH_OPACITY)
    vols = {k: vols[k] for k in ("normal", "ground_glass", "consolidation")}
    vols["opacity"] = vols["ground_glass"] + vols["consolidation"]
    vols["high_opacity"] = high
    vols["vessel"] = int(h_ves.sum())
    for cls in PRESETS["ards"] + classes:
        vols[cls.name] = count(tissue, cls)
    for name, c in vols.items():
        row[f"{name}_ml"] = c * voxel_ml
        row[f"pct_{name}"] = 100.0 * c / n if n else np.nan
    return row


def measure(
    hu: np.ndarray,
    lungs: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    vessels: np.ndarray | None = None,
    lesion_mask: np.ndarray | None = None,
    not_opacity: np.ndarray | None = None,
    classes: Iterable[HUClass] = (),
    none_below_pct: float = 1.0,
) -> tuple[dict, pd.DataFrame]:
    """Per-scan metrics and per-region metrics in one pass over the volume.

    Parameters
    ----------
    hu : (z, y, x) int16 array, HU. Axis 0 increases towards the head.
    lungs : (z, y, x) uint8 labels, 0 background, 1 right lung, 2 left lung.
    spacing : (dz, dy, dx) voxel size in mm.
    vessels : optional (z, y, x) bool, pulmonary vessels (counted in the lung, excluded from the HU classes).
    lesion_mask : optional (z, y, x) array, non-zero = lesion; replaces HU thresholds for the extent of opacity.
    not_opacity : optional (z, y, x) bool, lung voxels that never count as opacity (pleural rim, vessel halo).
    classes : extra :class:`HUClass` es (see :func:`hu_classes`), reported as ``<name>_ml`` and ``pct_<name>``.
    none_below_pct : a region with less opacity than this (%) scores 0.

    Returns
    -------
    scan : dict, the scan row: ``lung_volume_ml``, ``right_lung_ml``, ``left_lung_ml`` (mL), ``mean_hu``,
        ``median_hu``, ``p<q>_hu`` (HU), ``<class>_ml`` and ``pct_<class>`` (% of lung volume) for the radiology
        and ARDS classes, ``opacity``, ``high_opacity``, ``vessel`` and custom classes, ``severity_score`` (0-24),
        ``n_lesions`` (count) and ``largest_lesion_ml`` (mL; see :func:`lesion_metrics`).
    regions : DataFrame, one row per region (``region``, ``side``, ``zone``) with the same metrics (without the
        per-lung volumes) and ``involvement_score`` (0-4).
    """
    hu, lungs, vessels, lesion, guard = _checked(hu, lungs, vessels, lesion_mask, not_opacity)
    _check_spacing(spacing)
    h, labels = _lung_pass(hu, lungs, vessels, lesion, guard, "radiology")
    lesions = lesion_metrics(labels, spacing, min_ml=0.0 if lesion is not None else MIN_LESION_ML)
    return _measure(h, lesion is not None, spacing, tuple(classes), none_below_pct, lesions)


def _measure(
    h: dict[str, np.ndarray], use_lesion: bool, spacing, classes: tuple[HUClass, ...], none_below_pct, lesions: dict
):
    """Scan row and region table (see :func:`measure`) from the histograms of :func:`_lung_pass` and the scan's
    :func:`lesion_metrics`."""
    voxel_ml = float(np.prod(spacing)) / 1000.0

    rows = []
    for i, region in enumerate(REGIONS):
        side, zone = region.split("_")
        row = {"region": region, "side": side, "zone": zone}
        row |= _metrics(*(h[k][i] for k in ("all", "vessel", "lesion", "guard")), voxel_ml, classes, use_lesion)
        row["involvement_score"] = involvement_score(row["pct_opacity"], none_below_pct)
        rows.append(row)
    regions = pd.DataFrame(rows)

    scan = _metrics(*(h[k].sum(0) for k in ("all", "vessel", "lesion", "guard")), voxel_ml, classes, use_lesion)
    counts = h["all"].sum(axis=1)
    scan = (
        {"lung_volume_ml": scan.pop("lung_volume_ml")}
        | {"right_lung_ml": float(counts[:3].sum() * voxel_ml), "left_lung_ml": float(counts[3:].sum() * voxel_ml)}
        | scan
    )
    scan["severity_score"] = int(regions["involvement_score"].sum())
    scan |= lesions
    scan["opacity_source"] = "lesion_mask" if use_lesion else "hu_thresholds"
    return scan, regions


def measure_scan(hu: np.ndarray, lungs: np.ndarray, spacing: tuple[float, float, float], **options) -> dict:
    """The per-scan metrics row (see :func:`measure` for the options and keys)."""
    return measure(hu, lungs, spacing, **options)[0]


def measure_regions(hu: np.ndarray, lungs: np.ndarray, spacing: tuple[float, float, float], **options) -> pd.DataFrame:
    """Metrics of the six regions with their involvement scores (see :func:`measure`)."""
    return measure(hu, lungs, spacing, **options)[1]


def opacity_labels(
    hu: np.ndarray,
    lungs: np.ndarray,
    *,
    vessels: np.ndarray | None = None,
    lesion_mask: np.ndarray | None = None,
    not_opacity: np.ndarray | None = None,
    preset: str = "radiology",
) -> np.ndarray:
    """Opacity label volume: 0 none, 1 and 2 the preset's opacity classes, 3 vessel; uint8 (z, y, x).

    Labels are set only inside the lungs and agree with :func:`measure`. For ``radiology`` 1 is ground glass and
    2 consolidation: with ``lesion_mask`` the lesion voxels split at -300 HU (voxels outside the lesion are 0),
    otherwise by HU with ``not_opacity`` voxels left 0. For ``ards`` 1 is poorly and 2 non-aerated lung, by HU only
    (like the ARDS compartments of :func:`measure`). Vessels (3) override the other labels.
    """
    if preset not in OPACITY_CLASSES:
        raise InputError(f"preset {preset!r}: expected one of {', '.join(OPACITY_CLASSES)}")
    hu, lungs, vessels, lesion, guard = _checked(hu, lungs, vessels, lesion_mask, not_opacity)
    return _lung_pass(hu, lungs, vessels, lesion, guard, preset)[1]


def measure_and_label(
    hu: np.ndarray,
    lungs: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    vessels: np.ndarray | None = None,
    lesion_mask: np.ndarray | None = None,
    not_opacity: np.ndarray | None = None,
    classes: Iterable[HUClass] = (),
    none_below_pct: float = 1.0,
    preset: str = "radiology",
) -> tuple[dict, pd.DataFrame, np.ndarray]:
    """:func:`measure` and :func:`opacity_labels` in one pass over the lung voxels (what a scan needs).

    Parameters are those of :func:`measure` plus ``preset`` of :func:`opacity_labels`. Returns ``(scan, regions,
    labels)``: the scan row, the region table and the uint8 (z, y, x) opacity label volume, identical to the
    results of the two functions called separately.
    """
    if preset not in OPACITY_CLASSES:
        raise InputError(f"preset {preset!r}: expected one of {', '.join(OPACITY_CLASSES)}")
    hu, lungs, vessels, lesion, guard = _checked(hu, lungs, vessels, lesion_mask, not_opacity)
    _check_spacing(spacing)
    h, labels = _lung_pass(hu, lungs, vessels, lesion, guard, preset)
    opacity = labels if preset == "radiology" else _lung_pass(hu, lungs, vessels, lesion, guard, "radiology")[1]
    lesions = lesion_metrics(opacity, spacing, min_ml=0.0 if lesion is not None else MIN_LESION_ML)
    scan, regions = _measure(h, lesion is not None, spacing, tuple(classes), none_below_pct, lesions)
    return scan, regions, labels


def lesion_metrics(labels: np.ndarray, spacing: tuple[float, float, float], min_ml: float = 0.0) -> dict:
    """Number of lesions and the largest lesion's volume in an opacity label volume.

    A lesion is a connected component of the voxels labelled 1 or 2, voxels joined by a face, an edge or a corner
    (26-connectivity), found by :func:`cc3d.connected_components` (connected-components-3d: the same components as
    :func:`scipy.ndimage.label` or :func:`skimage.measure.label`, in a sixth of the time on a full-size scan, where
    those took about a tenth of the per-scan job) and measured by counting its voxels.

    Parameters
    ----------
    labels : (z, y, x) uint8 array
        Opacity labels of the radiology preset (:func:`opacity_labels`): 0 none, 1 ground glass, 2 consolidation,
        3 vessel (not opacity).
    spacing : (dz, dy, dx)
        Voxel size in mm.
    min_ml : float
        Smallest volume (mL) of a component counted in ``n_lesions``, >= 0. :func:`measure` and
        :func:`measure_and_label` pass :data:`MIN_LESION_ML` for opacity read from HU (no lesion mask): call with it
        to get their scan row's values.

    Returns
    -------
    dict
        ``n_lesions`` (count of the components of at least ``min_ml``) and ``largest_lesion_ml`` (mL; 0 when none
        is that large).

    Examples
    --------
    >>> labels = np.zeros((3, 4, 4), np.uint8)
    >>> labels[0, 0, 0] = labels[1, 1, 1] = 2  # corners touch: one lesion of two voxels
    >>> labels[2, 3, 3] = 1
    >>> lesion_metrics(labels, (2.0, 1.0, 1.0))
    {'n_lesions': 2, 'largest_lesion_ml': 0.004}
    """
    import cc3d

    from lungtrial.imaging._arrays import fast_bbox

    labels = np.asarray(labels)
    _check_spacing(spacing)
    if not (np.isfinite(min_ml) and min_ml >= 0):
        raise ValueError(f"min_ml must be a finite volume >= 0 (mL), got {min_ml!r}")
    box = fast_bbox(labels)  # the lungs' box first (a cheap pass), then the opacity's own box within it
    opacity = None if box is None else (labels[box] == 1) | (labels[box] == 2)
    inner = None if opacity is None else fast_bbox(opacity.view(np.uint8))
    if inner is None:
        return {"n_lesions": 0, "largest_lesion_ml": 0.0}
    opacity = np.ascontiguousarray(opacity[inner])
    lesions, n = cc3d.connected_components(opacity, connectivity=26, return_N=True)
    # voxels per lesion, counted over the opacity's voxels only (the whole box as int64 is a costly pass)
    voxels = np.bincount(lesions[opacity], minlength=n + 1)[1:]
    voxel_mm3 = float(np.prod(np.asarray(spacing, dtype=float)))
    counted = int(np.count_nonzero(voxels * voxel_mm3 >= 1000.0 * min_ml)) if min_ml > 0 else int(n)
    largest = float(voxels.max(initial=0)) * voxel_mm3 / 1000.0 if counted else 0.0  # the largest piece is a lesion
    return {"n_lesions": counted, "largest_lesion_ml": largest}


def metric_columns(classes: Iterable[HUClass] = ()) -> tuple[list[str], list[str]]:
    """Column names of the scan row and of the region table, in order (for tables of excluded scans)."""
    hu = np.full((1, 1, 1), -800, dtype=np.int16)
    scan, regions = measure(hu, np.ones_like(hu, dtype=np.uint8), (1.0, 1.0, 1.0), classes=classes)
    return list(scan), list(regions.columns)
