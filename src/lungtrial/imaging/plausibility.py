"""Plausibility of the lungs found: are the labelled "lungs" a chest CT's two lungs?

:func:`check_lungs` judges lung labels from the image and the labels alone, independently of how they were made
(any segmentation, or a mask given from outside): two lungs of adult size, mostly aerated, side by side either
side of the body's midline at the same height, each inside a rib cage, a trachea between and above their upper
parts, and no skull around them. It answers with reasons in words (an empty list: plausible), each giving the
measured figure and the expected range, so that a scan is not measured as a chest when it is an abdomen, a head or
a phantom, and a segmentation that lost a lung or took in bowel gas is caught before a number goes out.

Everything is judged on a coarse grid of about :data:`GRID_MM` (point samples of the volume: four per block
in-plane, averaged for soft-tissue and air decisions, their maximum for bone), so a 512 x 512 x 300 scan takes a
few tens of milliseconds; the skull is looked for in a few full slices at :data:`SKULL_GRID_MM`.

Conventions: volumes ``(z, y, x)`` in HU, ``spacing`` ``(dz, dy, dx)`` in mm; x increases to the patient's left
(the right lung lies at low x), y to posterior, z to superior. Labels: 0 background, 1 right lung, 2 left lung.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lungtrial.imaging._arrays import fill_holes_2d

__all__ = ["check_lungs"]

# -- grid ----------------------------------------------------------------------------------------------------------
#: mm; side of the coarse blocks the checks run on: finer than every structure judged (trachea >= 10 mm across,
#: ribs about 10 mm high, lungs >= 10 cm), coarse enough that a whole scan is a few hundred thousand blocks.
GRID_MM = 4.0
#: mm; pixel of the maximum-pooled slices searched for a skull: the skull vault is 4-8 mm thick (two cortical
#: tables and the diploe), so at 2 mm its ring stays closed.
SKULL_GRID_MM = 2.0

# -- HU thresholds --------------------------------------------------------------------------------------------------
#: HU; the body is denser: fat (about -100 HU) and every soft tissue lie above, air (-1000 HU) and aerated lung
#: (about -850 HU) below. Half-way between lung and soft tissue.
BODY_HU = -500.0
#: HU; air in an airway's lumen is -1000 HU; below -900 (averaged over four samples, i.e. noise of up to about
#: 100 HU per voxel) is air, not fat (-100 HU), soft tissue or a partial volume of the airway wall.
AIR_HU = -900.0
#: HU; rib bone (cancellous about 200-400 HU, cortex 700-1500 HU) is denser; muscle, blood and fat are below
#: 100 HU (maximum of four samples per block: the thin cortex is not averaged away).
BONE_HU = 200.0
#: HU; the skull vault's cortical bone (1000-2000 HU, above 700 even with partial volume at 2 mm); cancellous bone
#: of the spine and pelvis (200-400 HU) and calcified costal cartilage rarely reach it over a whole ring.
SKULL_HU = 700.0
#: HU; lung denser than this is non-aerated (Gattinoni's classes: non-aerated -100 to +100 HU, poorly aerated
#: -500 to -100, normally aerated -900 to -500).
AERATED_HU = -100.0

# -- the lungs ------------------------------------------------------------------------------------------------------
#: mL; the smallest lung accepted: an adult lung holds 1.5-4 L at CT (a third to half of the total), even a
#: collapsed or fibrotic lung or one after lobectomy keeps several hundred mL; less is a lung missed, cut or a gas
#: pocket.
MIN_LUNG_ML = 250.0
#: mL; total lung volume at CT (air + tissue) in adults: from about 1.5 L (small adult at expiration, severe
#: restriction or consolidation) to about 8-9 L (tall adult with emphysema at total lung capacity), with margin.
TOTAL_LUNG_ML = (1000.0, 10000.0)
#: fraction of the lungs' volume that must be aerated (HU <= AERATED_HU): even in severe ARDS or COVID-19 about
#: half of the lung volume remains aerated; a region mostly of soft tissue (heart, liver, bowel) is not lung.
MIN_AERATED_FRACTION = 0.4
#: mm; each lung's centre lies at least this far to its own side of the body's midline: normally 6-10 cm (the
#: mediastinum between them is about 5 cm wide or more), even with a shifted mediastinum more than 2 cm.
LUNG_OFF_MIDLINE_MM = 20.0
#: fraction of the shorter lung's craniocaudal extent shared with the other: both lungs span the thorax from the
#: apices (above the clavicles) to the domes (the right dome at most a few cm higher), so they overlap by 80 % or
#: more; less is two air pockets at different heights.
MIN_Z_OVERLAP = 0.5

# -- the trachea ----------------------------------------------------------------------------------------------------
#: mm; equivalent diameter of the trachea's lumen in an axial section: 10-25 mm in adults (coronal 13-25 mm in
#: men, 10-21 mm in women), widened by half a grid block either side for the coarse grid; in an intubated patient
#: the air is the endotracheal tube's lumen (6-8 mm inner diameter), hence the lower bound.
TRACHEA_DIAMETER_MM = (5.0, 32.0)
#: mm; the trachea lies on the midline (deviated to the right by the aortic arch by 1-2 cm at most; more only with
#: a large goitre or mass, or a rotated patient).
TRACHEA_OFF_MIDLINE_MM = 30.0
#: mm; shortest run of the trachea accepted above the lungs' mid-height: the trachea is 10-13 cm long and runs
#: from the larynx to the carina (in the upper third of the lungs' height); a scan that starts just below the larynx
#: shows most of it, a targeted reconstruction that cuts the lungs' tops still several cm.
TRACHEA_MIN_LENGTH_MM = 20.0
#: fraction of the lungs' height (from their bottom) above which the trachea is looked for: the carina lies about a
#: third of the lungs' height below the apices, so the trachea is above mid-height.
TRACHEA_FROM_HEIGHT = 0.5

# -- the rib cage ---------------------------------------------------------------------------------------------------
#: mm; the ribs lie just outside the pleura (2-10 mm of intercostal muscle and fascia between, the lung surface
#: is their inner side): bone this close lateral to the lung is the rib cage; fat lies outside the ribs.
RIB_DISTANCE_MM = 25.0
#: mm; bone this far above or below a slice counts for it: ribs are about 10 mm high with 15-20 mm between them, so
#: even ribs running horizontally (hyperinflated chest) leave no gap wider than this.
RIB_Z_MM = 5.0
#: fraction of a lung's slices with bone lateral to it: ribs run obliquely (down anteriorly), so every axial section
#: through the lungs cuts several of them beside each lung; gas in the abdomen or the head has none beside it (the
#: skull is judged apart).
RIB_MIN_FRACTION = 0.6
#: fraction of a lung's largest section area below which a slice is not judged for ribs (the apex and the bottom
#: of the recesses: a few blocks, where the rib may lie just above or below).
RIB_MIN_SECTION = 0.2

# -- the skull ------------------------------------------------------------------------------------------------------
#: mm; the skull is looked for from the lungs' bottom to this far above their top: a head scan's air (sinuses,
#: mastoid cells, pharynx) lies at most 10 cm below the closed vault, while a real lung apex is at least 15 cm below
#: it (the neck in between), so a whole-body scan's skull does not count against its lungs.
SKULL_ABOVE_MM = 100.0
#: number of slices searched for the skull (evenly over that range): the vault is closed over 5-10 cm.
SKULL_SLICES = 6
#: cm2; area enclosed by the ring: the brain's section above the orbits is 100-200 cm2 (the spinal canal inside a
#: vertebra is 2-3 cm2).
SKULL_MIN_ENCLOSED_CM2 = 50.0
#: fraction of the body's section enclosed by the ring: the skull encloses all of the head but the scalp.
SKULL_MIN_SECTION = 0.5


_PLANE = np.zeros((3, 3, 3), bool)  # in-plane 4-connectivity for (z, y, x) arrays: each slice on its own
_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (2-D or a stack of slices) with the holes of each slice filled."""
    return fill_holes_2d(mask) if mask.ndim == 3 else fill_holes_2d(mask[None])[0]


def _steps(shape, spacing, grid_mm: float) -> tuple[int, ...]:
    """Voxels per block along each axis for blocks of about ``grid_mm``."""
    return tuple(int(min(n, max(1, round(grid_mm / float(s))))) for n, s in zip(shape, spacing))


def _offsets(k: int) -> list[int]:
    """Sample positions within a block of ``k`` voxels: at its quarters (a single one in a 1- voxel block)."""
    return sorted({k // 4, (3 * k) // 4})


class _Coarse:
    """The volume on the coarse grid: per block the mean and the maximum of up to four in-plane samples, the lung
    label at its centre, the body and its per-slice midline."""

    def __init__(self, hu: np.ndarray, lungs: np.ndarray, spacing):
        kz, ky, kx = self.steps = _steps(hu.shape, spacing, GRID_MM)
        nz, ny, nx = (n // k for n, k in zip(hu.shape, self.steps))
        self.spacing = np.array([kz, ky, kx], float) * np.asarray(spacing, float)
        self.z_index = kz // 2 + kz * np.arange(nz)  # the full-resolution slice of each coarse slice
        zs = slice(kz // 2, kz // 2 + nz * kz, kz)
        oy, ox = _offsets(ky), _offsets(kx)
        # whole rows first (contiguous lines: fast), then the columns within them
        rows = hu[zs, (ky * np.arange(ny)[:, None] + np.array(oy)).ravel()]  # (nz, ny * len(oy), nx_full)
        cols = [rows[:, :, o : o + nx * kx : kx] for o in ox]
        line = cols[0].astype(np.float32)
        line_top = cols[0].copy()
        for col in cols[1:]:
            line += col
            np.maximum(line_top, col, out=line_top)
        n = len(oy)
        mean, top = line[:, ::n].copy(), line_top[:, ::n].copy()
        for j in range(1, n):
            mean += line[:, j::n]
            np.maximum(top, line_top[:, j::n], out=top)
        mean /= n * len(ox)
        self.mean, self.top = mean, top
        centre = (slice(ky // 2, ky // 2 + ny * ky, ky), slice(kx // 2, kx // 2 + nx * kx, kx))
        self.labels = np.ascontiguousarray(lungs[zs, centre[0], centre[1]])  # the label at each block's centre
        self.block_ml = float(np.prod(self.spacing)) / 1000.0

        tissue = mean > BODY_HU
        comps, n = ndimage.label(tissue)
        if n:
            sizes = np.bincount(comps.ravel())
            sizes[0] = 0
            body = comps == int(np.argmax(sizes))
        else:
            body = tissue
        self.body = _fill_holes(body)  # lungs and airways are holes of the body
        area = self.body.sum(axis=(1, 2))
        xs = np.arange(nx, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.midline = (self.body.sum(axis=1) @ xs) / area  # per slice, x index of the body's centroid


def _lung_figures(c: _Coarse, label: int) -> dict | None:
    """Volume, slices, centroid and per-slice areas of lung ``label`` on the coarse grid (None if absent)."""
    mask = c.labels == label
    per_slice = mask.sum(axis=(1, 2))
    n = int(per_slice.sum())
    if n == 0:
        return None
    zs = np.flatnonzero(per_slice)
    x = float(mask.sum(axis=(0, 1)) @ np.arange(mask.shape[2])) / n
    return {"mask": mask, "ml": n * c.block_ml, "per_slice": per_slice, "z0": int(zs[0]), "z1": int(zs[-1]), "x": x}


def _trachea_run_mm(c: _Coarse, z_from: int) -> float:
    """Longest craniocaudal run (mm) at or above coarse slice ``z_from`` of slices holding an air tube of trachea
    width, not labelled lung, enclosed by the body, near the body's midline (one missing slice bridged)."""
    air = (c.mean[z_from:] < AIR_HU) & c.body[z_from:] & (c.labels[z_from:] == 0)
    comps, n = ndimage.label(air, structure=_PLANE)  # each slice's components apart
    if n == 0:
        return 0.0
    dz, dy, dx = c.spacing
    where = np.flatnonzero(comps)
    which = comps.ravel()[where] - 1
    z, _, x = np.unravel_index(where, comps.shape)
    counts = np.bincount(which, minlength=n)
    area = counts * dy * dx
    cx = np.bincount(which, weights=x, minlength=n) / counts
    cz = np.bincount(which, weights=z, minlength=n) // counts
    cz = cz.astype(int)
    d0, d1 = TRACHEA_DIAMETER_MM
    ok = (area >= np.pi * d0 * d0 / 4) & (area <= np.pi * d1 * d1 / 4)
    ok &= np.abs(cx - c.midline[z_from + cz]) * dx <= TRACHEA_OFF_MIDLINE_MM  # NaN midline (no body): False
    boxes = ndimage.find_objects(comps)
    has = np.zeros(comps.shape[0], bool)
    for i in np.flatnonzero(ok):  # a tube's section, not a flat gap: neither side longer than the widest lumen
        _, by, bx = boxes[i]
        if (by.stop - by.start) * dy <= d1 + dy and (bx.stop - bx.start) * dx <= d1 + dx:
            has[cz[i]] = True
    has[1:-1] |= has[:-2] & has[2:]
    best = run = 0
    for h in has:
        run = run + 1 if h else 0
        best = max(best, run)
    return best * dz


def _rib_fraction(c: _Coarse, lung: dict, side: int) -> tuple[int, int]:
    """Slices (judged, with bone) of one lung having bone within RIB_DISTANCE_MM on its lateral side, in the slice or
    within RIB_Z_MM above or below it (``side`` -1: the right lung, lateral is low x; +1 the left)."""
    mask, per_slice = lung["mask"], lung["per_slice"]
    judged = np.flatnonzero(per_slice >= RIB_MIN_SECTION * per_slice.max())
    dz, dy, dx = c.spacing
    ry, rx = int(round(RIB_DISTANCE_MM / dy)), int(round(RIB_DISTANCE_MM / dx))
    rz = int(round(RIB_Z_MM / dz))
    sub = mask[judged]
    near = ndimage.maximum_filter(sub, size=(1, 2 * ry + 1, 2 * rx + 1)) & (c.labels[judged] == 0)
    xs = np.arange(mask.shape[2])
    cx = (sub.sum(axis=1) @ xs) / np.maximum(sub.sum(axis=(1, 2)), 1)  # each slice's lung centre (x index)
    lateral = (xs[None, :] - cx[:, None]) * side > 0
    bone = c.top[judged] > BONE_HU
    for step in range(1, rz + 1):  # the rib just above or below
        bone |= c.top[np.minimum(judged + step, len(c.top) - 1)] > BONE_HU
        bone |= c.top[np.maximum(judged - step, 0)] > BONE_HU
    hit = (near & bone & lateral[:, None, :]).any(axis=(1, 2))
    return len(judged), int(hit.sum())


def _skull(hu: np.ndarray, spacing, c: _Coarse, z0: int, z1: int, span: tuple[int, int]) -> str | None:
    """The reason if a closed ring of dense bone encloses most of a section at coarse slices ``z0 .. z1`` (a few
    slices evenly spaced), else None; ``span``: the lungs' first and last full-resolution slice."""
    _, dy, dx = (float(s) for s in spacing)
    ky, kx = _steps(hu.shape[1:], (dy, dx), SKULL_GRID_MM)
    ny, nx = hu.shape[1] // ky, hu.shape[2] // kx
    pixel_cm2 = ky * dy * kx * dx / 100.0
    for zc in np.unique(np.linspace(z0, z1, SKULL_SLICES).round().astype(int)):
        z = int(c.z_index[zc])
        section = hu[z]
        pooled = section[: ny * ky : ky, : nx * kx : kx].copy()
        for i in range(ky):
            for j in range(kx):
                if i or j:
                    np.maximum(pooled, section[i : ny * ky : ky, j : nx * kx : kx], out=pooled)
        dense = pooled > SKULL_HU
        if dense.sum() * pixel_cm2 < 0.1 * SKULL_MIN_ENCLOSED_CM2:
            continue
        inside = _fill_holes(dense) & ~dense
        enclosed = inside.sum() * pixel_cm2
        if enclosed < SKULL_MIN_ENCLOSED_CM2:
            continue
        body = _fill_holes(pooled > BODY_HU).sum() * pixel_cm2
        if enclosed >= SKULL_MIN_SECTION * body:
            return (
                f"a skull: a closed ring of dense bone (> {SKULL_HU:.0f} HU) encloses {enclosed:.0f} cm2 "
                f"({100 * enclosed / body:.0f} % of the section) in slice {z + 1}, where the lungs span slices "
                f"{span[0] + 1}-{span[1] + 1}; a head, not a chest (ribs never close a ring in an axial section; "
                f"expected no ring enclosing {SKULL_MIN_ENCLOSED_CM2:.0f} cm2 and {100 * SKULL_MIN_SECTION:.0f} % of "
                f"the section up to {SKULL_ABOVE_MM:.0f} mm above the lungs)"
            )
    return None


def _range_cut(present: list[dict], nz: int) -> str:
    """What to add to a small volume's reason when the lungs run through the scan's first or last slice (the
    scan's range cuts them: an upper chest or a neck, a lower chest or an abdomen), else ""."""
    if not present:
        return ""
    ends = []
    if min(lung["z0"] for lung in present) <= 0:
        ends.append("most inferior slice: its range ends above the lung bases (an upper chest or a neck)")
    if max(lung["z1"] for lung in present) >= nz - 1:
        ends.append("most superior slice: its range starts below the lung apices (a lower chest or an abdomen)")
    return "".join(f"; the lungs run through the scan's {end}" for end in ends)


def check_lungs(hu: np.ndarray, lungs: np.ndarray, spacing: tuple[float, float, float]) -> list[str]:
    """Reasons why the labelled lungs are implausible as a chest CT's lungs; an empty list when plausible.

    Judged from the image and the labels only (whatever made them), on a coarse grid of about :data:`GRID_MM`:

    - both lungs present, each at least :data:`MIN_LUNG_ML`, and their total within :data:`TOTAL_LUNG_ML`;
    - the lungs mostly aerated: at least :data:`MIN_AERATED_FRACTION` of their volume at or below
      :data:`AERATED_HU`;
    - side by side: the right lung's centre at least :data:`LUNG_OFF_MIDLINE_MM` to the right of the body's
      midline (lower x), the left one as far to the left, sharing at least :data:`MIN_Z_OVERLAP` of the shorter
      one's height;
    - a trachea: an air tube (below :data:`AIR_HU`, not labelled lung, enclosed by the body) of equivalent
      diameter within :data:`TRACHEA_DIAMETER_MM` within :data:`TRACHEA_OFF_MIDLINE_MM` of the midline, over at
      least :data:`TRACHEA_MIN_LENGTH_MM` above the lungs' mid-height;
    - a rib cage: bone (above :data:`BONE_HU`) within :data:`RIB_DISTANCE_MM` lateral to each lung in at least
      :data:`RIB_MIN_FRACTION` of its slices;
    - no skull: no closed ring of dense bone (above :data:`SKULL_HU`) enclosing a section of soft tissue from the
      lungs' bottom to :data:`SKULL_ABOVE_MM` above their top.

    Parameters
    ----------
    hu : (z, y, x) ndarray of int16 or float
        CT values in HU; z increases towards the head, x towards the patient's left, y towards posterior.
        Padding outside the field of view should read as air (-1024 HU).
    lungs : (z, y, x) ndarray of uint8
        Lung labels on the same grid: 0 background, 1 right lung, 2 left lung.
    spacing : (dz, dy, dx) tuple of float
        Voxel size in mm.

    Returns
    -------
    list of str
        One sentence per failed check, naming the measured figure (mL, %, mm, slices) and the expected range.
        Volumes are estimated from point samples on the coarse grid (within a few per cent of a voxel count).

    Raises
    ------
    ValueError
        If ``hu`` and ``lungs`` are not 3-D arrays of one shape, or ``spacing`` is not three positive sizes.

    Notes
    -----
    A 512 x 512 x 300 volume is judged in about 30-60 ms: only point samples of it are read (the full slices at
    most :data:`SKULL_SLICES` times). Real patients fail some checks: one lung after pneumonectomy, a lung fully
    collapsed, the trachea labelled as lung, a scan of the lung bases only; the reasons say so and the caller
    decides (``lungtrial quantify --measure-implausible`` measures them anyway).
    """
    hu, lungs = np.asarray(hu), np.asarray(lungs)
    if hu.ndim != 3 or hu.shape != lungs.shape:
        raise ValueError(f"hu {hu.shape} and lungs {lungs.shape}: expected two 3-D (z, y, x) arrays of one shape")
    if len(spacing) != 3 or min(float(s) for s in spacing) <= 0:
        raise ValueError(f"spacing {tuple(spacing)}: expected three positive voxel sizes (dz, dy, dx) in mm")
    c = _Coarse(hu, lungs, spacing)
    dz, _, dx = c.spacing
    found = {label: _lung_figures(c, label) for label in (1, 2)}
    reasons: list[str] = []

    # both lungs, adult volumes (a small volume of lungs that the scan's range cuts says so)
    present = [lung for lung in found.values() if lung is not None]
    cut = _range_cut(present, c.mean.shape[0])
    for label, name in ((1, "right"), (2, "left")):
        lung = found[label]
        if lung is None:
            reasons.append(f"{name} lung missing: nothing labelled {label} (sampled every {GRID_MM:.0f} mm); expected "
                           f"two lungs of at least {MIN_LUNG_ML:.0f} mL each")
        elif lung["ml"] < MIN_LUNG_ML:
            reasons.append(f"{name} lung {lung['ml']:.0f} mL; expected at least {MIN_LUNG_ML:.0f} mL (an adult lung "
                           "holds 1.5-4 L)" + cut)
    if not present:
        return reasons
    total = sum(lung["ml"] for lung in present)
    low, high = TOTAL_LUNG_ML
    if not low <= total <= high:
        reasons.append(f"lung volume {total / 1000:.2f} L; expected {low / 1000:.1f}-{high / 1000:.0f} L (adult lungs "
                       "at CT, from expiration or severe restriction to hyperinflation)" + (cut if total < low else ""))

    # mostly aerated
    inside = c.labels > 0
    aerated = float((c.mean[inside] <= AERATED_HU).mean())
    if aerated < MIN_AERATED_FRACTION:
        reasons.append(f"lungs {100 * aerated:.0f} % aerated (HU <= {AERATED_HU:.0f}); expected at least "
                       f"{100 * MIN_AERATED_FRACTION:.0f} % (even in severe ARDS about half of the lung is aerated)")

    # side by side either side of the midline, at the same height
    z0 = min(lung["z0"] for lung in present)
    z1 = max(lung["z1"] for lung in present)
    midline = np.nanmedian(c.midline[z0 : z1 + 1]) if np.isfinite(c.midline[z0 : z1 + 1]).any() else np.nan
    if np.isfinite(midline):
        for label, name, side, where in ((1, "right", -1, "right (lower x)"), (2, "left", 1, "left (higher x)")):
            lung = found[label]
            if lung is not None and (lung["x"] - midline) * dx * side < LUNG_OFF_MIDLINE_MM:
                reasons.append(f"{name} lung's centre {(lung['x'] - midline) * dx:+.0f} mm from the body's midline "
                               f"along x; expected at least {LUNG_OFF_MIDLINE_MM:.0f} mm to the patient's {where}")
    if len(present) == 2:
        a, b = found[1], found[2]
        shared = min(a["z1"], b["z1"]) - max(a["z0"], b["z0"]) + 1
        shorter = min(a["z1"] - a["z0"], b["z1"] - b["z0"]) + 1
        if shared < MIN_Z_OVERLAP * shorter:
            reasons.append(f"lungs at different heights: they share {max(shared, 0) * dz:.0f} mm of "
                           f"{shorter * dz:.0f} mm (the shorter one's extent); expected at least "
                           f"{100 * MIN_Z_OVERLAP:.0f} % (both lungs span the thorax)")

    # a trachea above and between the lungs' upper parts
    z_from = int(np.ceil(z0 + TRACHEA_FROM_HEIGHT * (z1 - z0)))
    run = _trachea_run_mm(c, z_from)
    if run < TRACHEA_MIN_LENGTH_MM:
        d0, d1 = TRACHEA_DIAMETER_MM
        reasons.append(f"no trachea: the longest air tube (< {AIR_HU:.0f} HU, not labelled lung) {d0:.0f}-{d1:.0f} mm "
                       f"wide within {TRACHEA_OFF_MIDLINE_MM:.0f} mm of the body's midline above the lungs' "
                       f"mid-height runs {run:.0f} mm; expected at least {TRACHEA_MIN_LENGTH_MM:.0f} mm (a chest CT "
                       "shows the trachea between and above the lungs' upper parts)"
                       + ("; the lungs run through the scan's most superior slice: its range starts below the "
                          "trachea (a lower chest or an abdomen)" if z1 >= c.mean.shape[0] - 1 else ""))

    # a rib cage beside each lung
    for label, name, side in ((1, "right", -1), (2, "left", 1)):
        lung = found[label]
        if lung is None:
            continue
        judged, hit = _rib_fraction(c, lung, side)
        if hit < RIB_MIN_FRACTION * judged:
            reasons.append(f"no rib cage beside the {name} lung: bone (> {BONE_HU:.0f} HU) within "
                           f"{RIB_DISTANCE_MM:.0f} mm lateral to it (+/- {RIB_Z_MM:.0f} mm) in {hit} of {judged} "
                           f"slices ({100 * hit / judged:.0f} %); expected at least {100 * RIB_MIN_FRACTION:.0f} % "
                           "(ribs surround the lungs)")

    # no skull around them
    top = min(c.mean.shape[0] - 1, z1 + int(round(SKULL_ABOVE_MM / dz)))
    skull = _skull(hu, spacing, c, z0, top, (int(c.z_index[z0]), int(c.z_index[z1])))
    if skull:
        reasons.append(skull)
    return reasons
