"""Trachea and main bronchi on the coarse grid (each constant below: its unit and its anatomical reason)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._grid import _PLANE4, _disk, _erode, _grey_grow

#: mm^2. Largest axial area of an airway region: a trachea is 15-25 mm wide (up to about 500 mm^2), a main
#: bronchus 10-16 mm; larger air regions are lung (or a trachea merged with lung on the coarse grid).
AIRWAY_MAX_AREA_MM2 = 1500.0
#: mm^2. Smallest axial area of the trachea where it is looked for (a lumen of 8 mm; an endotracheal tube's is
#: 7-8 mm); smaller air regions are noise or small bronchi.
TRACHEA_MIN_AREA_MM2 = 50.0
#: mm. The trachea lies within this distance of the body's midline (it deviates by 10-20 mm at most, more only when
#: a mass or a collapsed lung pulls it aside).
TRACHEA_MIDLINE_MM = 30.0
#: mm. The trachea is looked for in the most superior slices of this thickness that hold a candidate.
TRACHEA_TOP_MM = 10.0
#: mm. Shortest air column taken as the trachea: it runs 100-120 mm from the larynx to the carina, of which a chest
#: CT shows at least the 40-60 mm within the thorax; a shorter medial column is the pharynx or the larynx above
#: vocal cords that close the lumen on a thick slice.
TRACHEA_MIN_LENGTH_MM = 20.0
#: mm. In-plane reach of a caudal link between airway regions of adjacent slices: oblique main bronchi move
#: sideways by a few mm between thick slices.
AIRWAY_LINK_MM = 4.0
#: mm. The airway is followed within this distance of the trachea's axis in the plane (the main bronchi reach the
#: hila 40-60 mm from the midline).
AIRWAY_REACH_MM = 80.0
#: Growth allowed from one slice to the next (factor, and mm^2 added): a bronchus that the carina's spur narrows for
#: one slice is still followed; a region twice as large as the airway above it is lung.
AIRWAY_GROWTH = 2.0
AIRWAY_GROWTH_MM2 = 100.0
#: mm. The main bronchi end at the hila, 20-25 mm below the carina (right) to 40-50 mm (left, longer but more
#: horizontal); below that, bronchi belong to the lung.
BRONCHUS_LENGTH_MM = 25.0
#: HU. Least contrast between the bronchial lumen (air) and the lung parenchyma for the main bronchi to be told from
#: the lung where they merge in the plane (emphysematous lung is as dark as the lumen).
BRONCHUS_CONTRAST_HU = 50.0
#: The trachea runs down as one region at least this share of its area in its most superior slice; below, the
#: carina splits or widens it.
TRACHEA_NARROWING = 0.5


def _airways(inner_air: np.ndarray, body: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """Trachea and extrapulmonary bronchi on the coarse grid (bool).

    Axial air regions are linked to those of the next caudal slice that they overlap once grown by 4 mm in the
    plane. The trachea is the largest medial air region (within 30 mm of the body's midline, 50-1500 mm^2) of the
    most superior 10 mm holding one whose air column runs down at least :data:`TRACHEA_MIN_LENGTH_MM` and reaches
    the lungs' top (the highest slice of the largest body of air regions larger than 1500 mm^2); the airway grows
    caudally through regions of at most 1500 mm^2 that do not grow to more than twice the larger of the region
    above and its own parent (+ 100 mm^2): a bronchus that the carina's spur narrows for one slice is still
    followed. A bronchus stops where it merges with lung parenchyma in the axial plane (:func:`_bronchus_ends`
    follows it on from there).
    """
    dz, dy, dx = cspacing
    pix = dy * dx
    lab, n = ndimage.label(inner_air, structure=_PLANE4)
    if n == 0:
        return np.zeros_like(inner_air)
    idx = np.flatnonzero(lab)
    flat = lab.ravel()[idx]
    area = np.bincount(flat, minlength=n + 1) * pix
    # labels are numbered slice after slice (each plane is labelled on its own, in scan order)
    last = np.maximum.accumulate(lab.reshape(lab.shape[0], -1).max(axis=1))
    z_of = np.searchsorted(last, np.arange(n + 1), side="left")
    z_of[0] = 0
    cx = np.bincount(flat, weights=idx % lab.shape[2], minlength=n + 1) / np.maximum(area / pix, 1)
    # body midline per slice (x, voxels)
    bsum = body.sum(axis=(1, 2)).astype(float)
    bx = (body.sum(axis=1) * np.arange(body.shape[2])).sum(axis=1) / np.maximum(bsum, 1)

    max_area = AIRWAY_MAX_AREA_MM2
    medial = np.abs(cx - bx[z_of]) * dx <= TRACHEA_MIDLINE_MM
    small = (area >= TRACHEA_MIN_AREA_MM2) & (area <= max_area)
    cand = np.flatnonzero(small & medial)
    cand = cand[cand > 0]
    if cand.size == 0:
        return np.zeros_like(inner_air)
    # caudal links: a small region in slice k -> regions in slice k-1 within 4 mm in the plane (oblique bronchi
    # move sideways between thick slices); only within 80 mm of the trachea's axis
    # (links may pass through smaller regions: where the carina's spur and the bronchial walls blur on the coarse
    # grid, a bronchus can shrink below 50 mm^2 for a slice)
    link = area <= max_area
    ry, rx = (max(1, int(round(AIRWAY_LINK_MM / s))) for s in (dy, dx))
    half = int(np.ceil(AIRWAY_REACH_MM / dx))
    top_slices = max(1, int(round(TRACHEA_TOP_MM / dz)))

    def follow(seed: int) -> np.ndarray:
        """Regions of the airway grown caudally from ``seed`` (bool per label)."""
        x0 = int(round(cx[seed]))
        xs = slice(max(0, x0 - half), x0 + half + 1)
        sub = np.where(link[lab[: z_of[seed] + 1, :, xs]], lab[: z_of[seed] + 1, :, xs], 0)
        upper = _grey_grow(sub[1:], np.ones((1, 2 * ry + 1, 2 * rx + 1), dtype=bool))
        lower = sub[:-1]
        m = (upper > 0) & (lower > 0)
        pairs = np.unique(upper[m].astype(np.int64) * (n + 1) + lower[m])
        children: dict[int, list[int]] = {}
        for a, b in zip((pairs // (n + 1)).tolist(), (pairs % (n + 1)).tolist()):
            children.setdefault(a, []).append(b)
        keep = np.zeros(n + 1, dtype=bool)
        keep[seed] = True
        # (region, reference area): the reference is the larger of a region and its parent, so that a bronchus may
        # come back to its size after the one slice where the carina's spur narrowed it
        stack = [(seed, area[seed])]
        while stack:
            a, ref = stack.pop()
            for b in children.get(a, ()):
                if keep[b] or area[b] > max_area or area[b] > AIRWAY_GROWTH * ref + AIRWAY_GROWTH_MM2:
                    continue
                keep[b] = True
                stack.append((b, max(area[b], area[a])))
        return keep

    # the lungs' top: the highest slice of the largest body of air regions too large for an airway
    big, nbig = ndimage.label((area > max_area)[lab])
    if nbig:
        counts = np.bincount(big.ravel())
        counts[0] = 0
        lung_top = int(np.flatnonzero((big == int(np.argmax(counts))).any(axis=(1, 2)))[-1])
    else:
        lung_top = None
    # the trachea: most superior candidate slices (within 10 mm of the top one), largest there. It runs down at least
    # TRACHEA_MIN_LENGTH_MM and reaches the lungs' top; otherwise (the pharynx or larynx above vocal cords that
    # close the lumen on a thick slice; the nasal cavity of a scan that starts at the head) the next candidates below
    # are tried
    first = longest = None
    while cand.size:
        ztop = z_of[cand].max()
        top = cand[z_of[cand] >= ztop - top_slices]
        seed = int(top[np.argmax(area[top])])
        keep = follow(seed)
        first = keep if first is None else first
        zs = z_of[np.flatnonzero(keep)]
        if (zs.max() - zs.min() + 1) * dz >= TRACHEA_MIN_LENGTH_MM:
            if lung_top is None or zs.min() <= lung_top:
                return keep[lab]
            longest = keep if longest is None else longest
        cand = cand[(z_of[cand] < zs.min()) & ~keep[cand]]
    return (longest if longest is not None else first)[lab]


def _bronchus_ends(airway: np.ndarray, inner_air: np.ndarray, coarse: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """The main bronchi below where :func:`_airways` stops following them, where they merge with the lung in the
    axial plane (coarse grid, bool; ``airway`` itself is not included).

    The carina is taken at the centre of the slice below the trachea's last slice (the last one, from the top,
    where the airway is one region of at least half the trachea's area in its most superior slice). From there
    down, the main bronchi go on as tubes: in each slice, the air darker than half-way between the lumen (median
    HU of the trachea's in-plane interior) and the lung (median HU of the other air of these slices), in the
    in-plane regions that come within the trachea's radius of the bronchi's footprint in the slice above (airway
    or tube: oblique bronchi move sideways between thick slices), plus the partial-volume ring of the bronchial
    wall (air next to both that lumen and tissue). A dark region larger than twice the trachea (+ 100 mm^2; both
    bronchi just below the carina) is lung, not a tube, and is left alone. The tubes end 25 mm below the carina
    (the main bronchi end at the hilum; intrapulmonary bronchi belong to the lung) and within 80 mm of the
    airway in the plane. Without 50 HU between the lumen and the lung (emphysema) nothing is found.
    """
    dz, dy, dx = cspacing
    pix = dy * dx
    ends = np.zeros_like(airway)
    zs = np.flatnonzero(airway.any(axis=(1, 2)))
    if zs.size < 2:
        return ends
    planes, _ = ndimage.label(airway[zs[0] : zs[-1] + 1], structure=_PLANE4)
    counts = np.zeros(zs.size, dtype=int)  # regions per slice (each plane is labelled on its own)
    for obj in ndimage.find_objects(planes):
        if obj is not None:
            counts[obj[0].start] += 1
    areas = (planes > 0).sum(axis=(1, 2)) * pix
    top_area = float(areas[-1])
    # the trachea, down from the most superior slice: one region, at least half as wide as there
    zc = zs.size - 1
    while zc > 0 and counts[zc - 1] == 1 and areas[zc - 1] >= TRACHEA_NARROWING * top_area:
        zc -= 1
    zc += int(zs[0])  # the trachea's last slice; the carina lies in the next one
    lowest = max(0, int(np.ceil(zc - 1 - BRONCHUS_LENGTH_MM / dz)))
    if lowest >= zc:
        return ends
    # the plane's box: within 80 mm of the airway
    rows, cols = np.flatnonzero(airway.any(axis=(0, 2))), np.flatnonzero(airway.any(axis=(0, 1)))
    my, mx = int(np.ceil(AIRWAY_REACH_MM / dy)), int(np.ceil(AIRWAY_REACH_MM / dx))
    box = (slice(max(0, rows[0] - my), rows[-1] + my + 1), slice(max(0, cols[0] - mx), cols[-1] + mx + 1))
    trachea = airway[(slice(zc, None), *box)]
    core = trachea & _erode(trachea, _PLANE4)
    lumen = float(np.median(coarse[(slice(zc, None), *box)][core if core.any() else trachea]))
    below = (slice(lowest, zc), *box)
    lung = inner_air[below] & ~airway[below]
    if not lung.any():
        return ends
    parenchyma = float(np.median(coarse[below][lung]))
    if parenchyma - lumen < BRONCHUS_CONTRAST_HU:
        return ends
    limit = 0.5 * (lumen + parenchyma)
    disk = _disk(np.sqrt(top_area / np.pi), (dy, dx))[0]
    for z in range(zc - 1, lowest - 1, -1):
        here, above = (z, *box), (z + 1, *box)
        foot = airway[above] | ends[above]
        air = inner_air[here] & ~airway[here]
        dark = air & (coarse[here] < limit)
        near = ndimage.binary_dilation(foot, disk) & dark
        if not near.any():
            continue
        pieces, _ = ndimage.label(dark)
        hit = np.unique(pieces[near])
        sizes = np.bincount(pieces.ravel())[hit] * pix
        tube = np.isin(pieces, hit[sizes <= AIRWAY_GROWTH * top_area + AIRWAY_GROWTH_MM2])
        # the partial-volume ring of the bronchial wall: air next to both the lumen and the wall (tissue)
        ring = ndimage.binary_dilation(tube, _PLANE4[1]) & ndimage.binary_dilation(~inner_air[here], _PLANE4[1])
        ends[here] = tube | (ring & air)
    return ends
