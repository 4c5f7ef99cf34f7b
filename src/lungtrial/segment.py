"""Lung segmentation: left/right lung labels, airways excluded, lesions repaired; vessel and rim masks.

Conventions (see ``docs/architecture.md``): volumes are ``(z, y, x)`` arrays in HU, ``spacing`` is ``(dz, dy, dx)``
in mm, x increases to the patient's left, y to posterior and z to superior, so the right lung lies at low x.

Method of :func:`segment_lungs` (all thresholds are physical HU values, no scanner- or phantom-specific numbers):

1. The volume is block-averaged to voxels of about 2 mm (``coarse``), where all topology work happens.
2. The body is the largest connected region denser than -500 HU, its holes filled slice by slice; air inside it
   (< -500 HU) is lung, airway or bowel gas. Outside air, the table and the air inside a hollow table are thereby
   excluded.
3. The trachea is found as a small, medial air region in the most superior slices and followed caudally through
   small air regions that are separate from the lungs in the axial plane (trachea, main bronchi in the
   mediastinum). They are removed.
4. The largest remaining air region is one lung, or both lungs joined at the anterior/posterior junction; joined
   lungs are split by erosion and nearest-seed assignment. The other lung is the largest region on the other
   side of the body's midline reaching above the first lung's centre (bowel gas lies below the diaphragm).
5. Lesion repair, slice by slice and per lung: holes enclosed by the lung (vessels, lesions) are filled, and
   pockets between the lung and its convex hull are added when they lie lateral, anterior or posterior to the
   lung (subpleural ground glass and consolidation against the chest wall), never when they lie medially
   (mediastinum, heart, spine, liver dome). Bone (> 150 HU) is never added.
6. The boundary is refined at full resolution with the -500 HU threshold within one coarse voxel of the coarse
   boundary; the repaired pockets keep their coarse extent.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["segment_lungs", "segment_vessels", "opacity_exclusion"]

AIR_HU = -500.0  # half-way between aerated lung (about -850 HU) and soft tissue (about 40 HU)
BONE_HU = 150.0  # denser than any consolidation
RIGHT, LEFT = 1, 2

# in-plane (axial) connectivity structures for 3D arrays: each slice is labelled on its own
_PLANE4 = np.zeros((3, 3, 3), dtype=bool)
_PLANE4[1] = ndimage.generate_binary_structure(2, 1)
_PLANE8 = np.zeros((3, 3, 3), dtype=bool)
_PLANE8[1] = True


def _check(hu: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"hu must be a 3D (z, y, x) array, got shape {hu.shape}")
    sp = np.asarray(spacing, dtype=float)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be three positive numbers (dz, dy, dx) in mm, got {spacing!r}")
    return hu, sp


def _block_factors(spacing: np.ndarray, target_mm: float) -> np.ndarray:
    """Integer block size per axis so that blocks are about ``target_mm`` wide."""
    return np.maximum(1, np.round(target_mm / spacing)).astype(int)


def _block_reduce(vol: np.ndarray, factors: np.ndarray, chunk_blocks: int = 8) -> np.ndarray:
    """Block mean of ``vol`` as float32; edge blocks are averaged over the voxels they hold."""
    fz, fy, fx = (int(f) for f in factors)
    nz, ny, nx = vol.shape
    cz, cy, cx = -(-nz // fz), -(-ny // fy), -(-nx // fx)
    out = np.empty((cz, cy, cx), dtype=np.float32)
    py, px = cy * fy - ny, cx * fx - nx
    for b0 in range(0, cz, chunk_blocks):
        z0, z1 = b0 * fz, min(nz, (b0 + chunk_blocks) * fz)
        slab = vol[z0:z1]
        pz = -(z1 - z0) % fz
        nb = (z1 - z0 + pz) // fz
        sums = np.zeros((nb * fz, cy * fy, cx * fx), dtype=np.float32)
        sums[: z1 - z0, :ny, :nx] = slab
        sums = sums.reshape(nb, fz, cy, fy, cx, fx).sum(axis=(1, 3, 5))
        out[b0 : b0 + nb] = sums
    counts = np.ones((cz, cy, cx), dtype=np.float32) * (fz * fy * fx)
    if nz % fz:
        counts[-1] *= (nz % fz) / fz
    if ny % fy:
        counts[:, -1] *= (ny % fy) / fy
    if nx % fx:
        counts[:, :, -1] *= (nx % fx) / fx
    out /= counts
    return out


def _upsample(mask: np.ndarray, factors: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a coarse array to ``shape`` (block replication)."""
    out = mask
    for axis, (f, n) in enumerate(zip(factors, shape)):
        out = np.repeat(out, int(f), axis=axis)
        out = out[(slice(None),) * axis + (slice(0, n),)]
    return out


def _ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Ellipsoidal structuring element of physical radius ``radius_mm`` on a grid of ``spacing`` (mm)."""
    r = np.maximum(0, np.floor(radius_mm / spacing + 1e-6)).astype(int)
    grids = np.ogrid[tuple(slice(-int(k), int(k) + 1) for k in r)]
    d2 = sum((g * s / radius_mm) ** 2 for g, s in zip(grids, spacing))
    return d2 <= 1.0 + 1e-9


def _body(dense: np.ndarray) -> np.ndarray:
    """Largest dense connected region with its holes filled slice by slice (bool, coarse grid)."""
    lab, n = ndimage.label(dense)
    if n == 0:
        raise ValueError("no body found: no voxel is denser than -500 HU")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(body, structure=_PLANE4)


def _airways(inner_air: np.ndarray, body: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """Trachea and extrapulmonary bronchi on the coarse grid (bool).

    Axial air regions are linked between neighbouring slices when they overlap. The trachea is the medial air
    region (within 30 mm of the body's midline, 50-1500 mm^2) of the most superior slices; the airway grows
    caudally through regions smaller than ``max_area`` that do not more than double from slice to slice. A bronchus
    stops where it merges with lung parenchyma in the axial plane.
    """
    dz, dy, dx = cspacing
    pix = dy * dx
    lab, n = ndimage.label(inner_air, structure=_PLANE4)
    if n == 0:
        return np.zeros_like(inner_air)
    flat = lab.ravel()
    area = np.bincount(flat, minlength=n + 1) * pix
    zz = np.arange(lab.shape[0])[:, None, None]
    xx = np.arange(lab.shape[2])[None, None, :]
    z_of = np.zeros(n + 1, dtype=int)
    z_of[flat] = np.broadcast_to(zz, lab.shape).ravel()
    cx = np.bincount(flat, weights=np.broadcast_to(xx, lab.shape).ravel(), minlength=n + 1) / np.maximum(
        area / pix, 1
    )
    # body midline per slice (x, voxels)
    bsum = body.sum(axis=(1, 2)).astype(float)
    bx = (body.sum(axis=1) * np.arange(body.shape[2])).sum(axis=1) / np.maximum(bsum, 1)

    max_area = 1500.0  # mm^2; a trachea is 15-25 mm wide, a main bronchus 10-16 mm
    medial = np.abs(cx - bx[z_of]) * dx <= 30.0
    small = (area >= 50.0) & (area <= max_area)
    cand = np.flatnonzero(small & medial)
    cand = cand[cand > 0]
    if cand.size == 0:
        return np.zeros_like(inner_air)
    # the trachea: most superior candidate slices (within 10 mm of the top one), largest there
    ztop = z_of[cand].max()
    top = cand[z_of[cand] >= ztop - max(1, int(round(10.0 / dz)))]
    seed = int(top[np.argmax(area[top])])

    # caudal overlap links: component in slice k -> components in slice k-1 sharing pixels
    upper, lower = lab[1:], lab[:-1]
    m = (upper > 0) & (lower > 0)
    pairs = np.unique(upper[m].astype(np.int64) * (n + 1) + lower[m])
    children: dict[int, list[int]] = {}
    for a, b in zip((pairs // (n + 1)).tolist(), (pairs % (n + 1)).tolist()):
        children.setdefault(a, []).append(b)

    keep = np.zeros(n + 1, dtype=bool)
    keep[seed] = True
    stack = [seed]
    while stack:
        a = stack.pop()
        for b in children.get(a, ()):
            if keep[b] or area[b] > max_area or area[b] > 2.0 * area[a] + 100.0:
                continue
            keep[b] = True
            stack.append(b)
    return keep[lab]


def _split_joined(comp: np.ndarray, cspacing: np.ndarray, midline_x: float) -> np.ndarray | None:
    """Split one region holding both lungs; returns labels 1 (right) / 2 (left) or None if it is one lung."""
    eroded = comp
    for _ in range(int(np.ceil(30.0 / cspacing[1:].min()))):
        eroded = ndimage.binary_erosion(eroded)
        if not eroded.any():
            return None
        lab, n = ndimage.label(eroded)
        if n < 2:
            continue
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        order = np.argsort(sizes)[::-1][:2]
        if sizes[order[1]] < 0.1 * sizes[order[0]]:
            continue
        cxs = [np.nonzero(lab == k)[2].mean() for k in order]
        if (cxs[0] - midline_x) * (cxs[1] - midline_x) >= 0:
            continue  # two parts on the same side: one lung with a narrow waist
        seeds = np.zeros(comp.shape, dtype=np.uint8)
        right, left = (order[0], order[1]) if cxs[0] < cxs[1] else (order[1], order[0])
        seeds[lab == right] = RIGHT
        seeds[lab == left] = LEFT
        idx = ndimage.distance_transform_edt(seeds == 0, sampling=cspacing, return_distances=False, return_indices=True)
        out = seeds[tuple(idx)]
        out[~comp] = 0
        return out
    return None


def _pick_lungs(cand: np.ndarray, body: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """Right (1) and left (2) lung among the candidate air regions (coarse grid, uint8)."""
    voxel_ml = float(np.prod(cspacing)) / 1000.0
    lab, n = ndimage.label(cand)
    if n == 0:
        raise ValueError("no lung found: no air region inside the body")
    sizes = np.bincount(lab.ravel()).astype(float)
    sizes[0] = 0
    order = [int(k) for k in np.argsort(sizes)[::-1] if sizes[k] * voxel_ml >= 20.0]
    if not order:
        raise ValueError("no lung found: the largest air region inside the body is smaller than 20 ml")
    objs = ndimage.find_objects(lab)
    xs_body = body.sum(axis=(0, 1)).astype(float)
    midline_x = float((xs_body * np.arange(body.shape[2])).sum() / xs_body.sum())

    first = order[0]
    sl = objs[first - 1]
    split = _split_joined(lab[sl] == first, cspacing, midline_x - sl[2].start)
    out = np.zeros(cand.shape, dtype=np.uint8)
    if split is not None:
        out[sl][split > 0] = split[split > 0]
        return out

    zs, _, xs = np.nonzero(lab[sl] == first)
    side = RIGHT if xs.mean() + sl[2].start < midline_x else LEFT
    out[lab == first] = side
    zc = zs.mean() + sl[0].start
    for k in order[1:]:
        o = objs[k - 1]
        kz, _, kx = np.nonzero(lab[o] == k)
        other = (kx.mean() + o[2].start < midline_x) != (side == RIGHT)
        if other and o[0].stop - 1 >= zc:
            out[lab == k] = LEFT if side == RIGHT else RIGHT
            break
    return out


def _depth(body: np.ndarray, cspacing: np.ndarray, zrange: range) -> np.ndarray:
    """Distance (mm) to the outside of the body within each axial slice, for the slices in ``zrange``."""
    out = np.zeros(body.shape, dtype=np.float32)
    for z in zrange:
        out[z] = ndimage.distance_transform_edt(body[z], sampling=cspacing[1:])
    return out


def _pockets(
    lung: np.ndarray,
    allowed: np.ndarray,
    depth: np.ndarray,
    pix: tuple[float, float],
    wall_mm: float,
    medial: tuple[float, float] | None = None,
) -> np.ndarray:
    """Subpleural pockets of one lung in the planes ``lung[k]`` (bool, same shape as ``lung``).

    A pocket is a region between the lung and its convex hull; its chord is the part of its outline on the hull.
    A lesion against the chest wall leaves a pocket whose chord runs along the chest wall: at most ``wall_mm`` + 35
    mm below the skin, with ends at most ``wall_mm`` + 25 mm deep, and no deeper than its deeper end plus 4 mm and
    the sagitta of a 150 mm radius body outline over the chord. Pockets of the mediastinum, heart, spine or liver
    dome have chords through the depth of the body. In axial planes (``medial`` given: the medial unit vector in
    plane coordinates) pockets that lie medially of the lung's centre are rejected too, and holes enclosed by the
    lung (vessels, lesions) are added.
    """
    from skimage.morphology import convex_hull_image

    cross = ndimage.generate_binary_structure(2, 1)
    out = np.zeros(lung.shape, dtype=bool)
    for k in np.flatnonzero(lung.any(axis=(1, 2))):
        sl = lung[k]
        rows, cols = np.flatnonzero(sl.any(axis=1)), np.flatnonzero(sl.any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        crop = sl[box]
        if crop.sum() < 10:
            continue
        hull = convex_hull_image(crop)
        pocket = hull & ~crop & allowed[k][box]
        lab, n = ndimage.label(pocket, structure=cross)
        if n == 0:
            continue
        rim = hull & ~ndimage.binary_erosion(hull, structure=cross, border_value=0)
        chord = np.where(rim, lab, 0)
        ends = np.where(ndimage.binary_dilation(crop, structure=np.ones((3, 3), bool)), chord, 0)
        idx = np.arange(1, n + 1)
        d = depth[k][box]
        dmax = np.asarray(ndimage.maximum(d, chord, idx), dtype=float)
        dend = np.asarray(ndimage.maximum(d, ends, idx), dtype=float)
        has_chord = np.bincount(chord.ravel(), minlength=n + 1)[1:] > 0
        length = np.zeros(n)
        for i, o in enumerate(ndimage.find_objects(chord, max_label=n)):
            if o is not None:
                length[i] = np.hypot((o[0].stop - o[0].start) * pix[0], (o[1].stop - o[1].start) * pix[1])
        ok = (
            has_chord
            & (dmax - dend <= 4.0 + length**2 / (8.0 * 150.0))
            & (dmax <= wall_mm + 35.0)
            & (dend <= wall_mm + 25.0)
        )
        if medial is not None:
            r, c = np.nonzero(crop)
            pr, pc = np.nonzero(lab)
            cnt = np.maximum(np.bincount(lab[pr, pc], minlength=n + 1)[1:], 1)
            vr = (np.bincount(lab[pr, pc], weights=pr, minlength=n + 1)[1:] / cnt - r.mean()) * pix[0]
            vc = (np.bincount(lab[pr, pc], weights=pc, minlength=n + 1)[1:] / cnt - c.mean()) * pix[1]
            ok &= vr * medial[0] + vc * medial[1] < 0.5 * np.hypot(vr, vc)
            ok |= ~has_chord
        keep = np.concatenate([[False], ok])
        out[k][box] |= keep[lab]
    return out


def _repair(lungs: np.ndarray, coarse: np.ndarray, body: np.ndarray, airway: np.ndarray, cspacing) -> np.ndarray:
    """Add to each lung its enclosed holes (axial) and its subpleural pockets in axial, coronal and sagittal planes."""
    out = lungs.copy()
    zs = np.flatnonzero(lungs.any(axis=(1, 2)))
    depth = _depth(body, cspacing, range(zs[0], zs[-1] + 1))
    allowed = body & (coarse < BONE_HU) & (lungs == 0) & ~airway
    dz, dy, dx = cspacing
    for label, medial_x in ((RIGHT, 1.0), (LEFT, -1.0)):
        lung = lungs == label
        if not lung.any():
            continue
        # chest wall thickness: median over slices of the lung's smallest depth below the skin
        dl = np.where(lung, depth, np.inf).min(axis=(1, 2))
        wall = float(np.median(dl[np.isfinite(dl)]))
        add = _pockets(lung, allowed, depth, (dy, dx), wall, medial=(0.0, medial_x))
        for axis, pix in ((1, (dz, dx)), (2, (dz, dy))):  # coronal planes (z, x), sagittal planes (z, y)
            planes = _pockets(*(np.moveaxis(v, axis, 0) for v in (lung, allowed, depth)), pix, wall)
            add |= np.moveaxis(planes, 0, axis)
        out[add & (out == 0)] = label
    return out


def segment_lungs(hu: np.ndarray, spacing) -> np.ndarray:
    """Label the right and left lungs of a chest CT volume.

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume in Hounsfield units (int16 or float), x towards the patient's left, y posterior, z superior.
    spacing : (dz, dy, dx)
        Voxel size in mm; anisotropic voxels (slices 0.6-5 mm, pixels 0.5-1 mm) are handled.

    Returns
    -------
    labels : (z, y, x) uint8
        0 background, 1 right lung, 2 left lung. Lungs include their vessels and their opacities (ground glass,
        consolidation, also against the chest wall); the trachea and the main bronchi, outside air, the table and
        bowel gas are excluded.

    Raises
    ------
    ValueError
        If the arrays are malformed or no lung can be found (no air region of at least 20 ml inside the body).
    """
    hu, sp = _check(hu, spacing)
    factors = _block_factors(sp, 2.0)
    csp = sp * factors
    coarse = _block_reduce(hu, factors)
    air = coarse < AIR_HU
    body = _body(~air)
    inner = air & body
    airway = _airways(inner, body, csp)
    aerated = _pick_lungs(inner & ~airway, body, csp)
    lungs_c = _repair(aerated, coarse, body, airway, csp)
    del coarse, air, inner
    return _refine(hu, lungs_c, aerated, airway, factors)


def _refine(
    hu: np.ndarray, lungs_c: np.ndarray, aerated_c: np.ndarray, airway_c: np.ndarray, factors: np.ndarray
) -> np.ndarray:
    """Full-resolution labels: the -500 HU threshold decides within one coarse voxel of the coarse boundary.

    Repaired (lesion) coarse voxels keep their coarse extent; airway voxels are never added.
    """
    inside = lungs_c > 0
    interior = ndimage.binary_erosion(inside, border_value=0)
    grown = ndimage.grey_dilation(lungs_c, footprint=ndimage.generate_binary_structure(3, 1))
    grown[inside] = lungs_c[inside]
    grown[airway_c] = 0
    repaired = inside & (aerated_c == 0)
    band = (grown > 0) & ~interior & ~repaired
    fixed = np.where(band, 0, lungs_c).astype(np.uint8)

    fz, fy, fx = (int(f) for f in factors)
    nz, ny, nx = hu.shape
    iy = np.minimum(np.arange(ny) // fy, lungs_c.shape[1] - 1)
    ix = np.minimum(np.arange(nx) // fx, lungs_c.shape[2] - 1)
    out = np.zeros(hu.shape, dtype=np.uint8)
    for cz in range(lungs_c.shape[0]):
        if not grown[cz].any():
            continue
        f2 = fixed[cz][iy[:, None], ix[None, :]]
        b2 = band[cz][iy[:, None], ix[None, :]]
        g2 = grown[cz][iy[:, None], ix[None, :]]
        for z in range(cz * fz, min(nz, (cz + 1) * fz)):
            sl = f2.copy()
            m = b2 & (hu[z] < AIR_HU)
            sl[m] = g2[m]
            out[z] = sl
    return out


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of a non-empty mask, as slices."""
    sl = []
    for axis in range(mask.ndim):
        idx = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        sl.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(sl)


def _radii(radius_mm: float, spacing: np.ndarray, min_voxels: int) -> list[int]:
    """Per-axis radius in voxels of a physical radius, at least ``min_voxels``."""
    return [max(min_voxels, int(round(radius_mm / s))) for s in spacing]


def _box_filter(mask: np.ndarray, radii: list[int], grow: bool) -> np.ndarray:
    """Separable box dilation (``grow``) or erosion of a bool mask by ``radii`` voxels along each axis."""
    out = mask.view(np.uint8)
    flt = ndimage.maximum_filter1d if grow else ndimage.minimum_filter1d
    for axis, r in enumerate(radii):
        if r > 0:
            out = flt(out, 2 * r + 1, axis=axis, mode="constant", cval=0)
    return out.view(bool)


def segment_vessels(
    hu: np.ndarray, lungs: np.ndarray, spacing, *, threshold_hu: float = -300.0, blob_radius_mm: float = 4.0
) -> np.ndarray:
    """Pulmonary vessels: thin dense structures inside the lungs, as distinct from blob-like consolidation.

    Dense voxels (> ``threshold_hu``) inside ``lungs`` are vessels unless they belong to a blob: a dense region
    that holds a ball of radius ``blob_radius_mm`` (opening on a grid of about 2 mm, where a voxel is dense when
    at least half of it is). Vessels narrower than about ``2 * blob_radius_mm + 2`` mm are therefore vessels;
    consolidation and lesions at least that thick, subpleural or not, are not.

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume in HU.
    lungs : (z, y, x) array
        Lung mask or labels (non-zero is lung), e.g. from :func:`segment_lungs`.
    spacing : (dz, dy, dx)
        Voxel size in mm.
    threshold_hu : float
        Minimum HU of a vessel voxel.
    blob_radius_mm : float
        Radius (mm) of the smallest ball a consolidation holds.

    Returns
    -------
    vessels : (z, y, x) bool
    """
    hu, sp = _check(hu, spacing)
    lungs = np.asarray(lungs)
    if lungs.shape != hu.shape:
        raise ValueError(f"lungs shape {lungs.shape} differs from hu shape {hu.shape}")
    out = np.zeros(hu.shape, dtype=bool)
    if not lungs.any():
        return out
    box = _bbox(lungs)
    dense = (lungs[box] > 0) & (hu[box] > threshold_hu)
    factors = _block_factors(sp, 2.0)
    csp = sp * factors
    solid = _block_reduce(dense, factors) >= 0.5
    blob = ndimage.binary_opening(solid, structure=_ball(blob_radius_mm, csp))
    blob = ndimage.binary_dilation(blob, structure=ndimage.generate_binary_structure(3, 1))
    dense &= ~_upsample(blob, factors, dense.shape)
    out[box] = dense
    return out


def opacity_exclusion(
    hu: np.ndarray,
    lungs: np.ndarray,
    spacing,
    *,
    vessels: np.ndarray | None = None,
    halo_mm: float = 1.0,
    rim_mm: float = 1.5,
    aerated_hu: float = -700.0,
) -> np.ndarray:
    """Lung voxels that must not count as opacity: vessels with their partial-volume halo, and the pleural rim.

    - ``vessels`` (default :func:`segment_vessels`) grown by ``halo_mm``: the blurred edge of a vessel reads as
      ground glass.
    - The rim: lung voxels within ``rim_mm`` (and at least one voxel along each axis) of the lung boundary, next
      to aerated lung (< ``aerated_hu`` HU) deeper inside. Partial volume with the chest wall, mediastinum and
      diaphragm reads as ground glass there; where a lesion lies against the pleura the lung inside is not
      aerated, so the lesion still counts.

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume in HU.
    lungs : (z, y, x) array
        Lung mask or labels (non-zero is lung).
    spacing : (dz, dy, dx)
        Voxel size in mm.
    vessels : (z, y, x) bool, optional
        Vessel mask; computed with :func:`segment_vessels` when omitted.
    halo_mm, rim_mm : float
        Widths (mm) of the vessel halo and of the pleural rim; at least one voxel along each axis.
    aerated_hu : float
        Upper HU bound of aerated lung.

    Returns
    -------
    excluded : (z, y, x) bool, inside ``lungs``; it contains ``vessels``.
    """
    hu, sp = _check(hu, spacing)
    lungs = np.asarray(lungs)
    if vessels is None:
        vessels = segment_vessels(hu, lungs, sp)
    out = np.zeros(hu.shape, dtype=bool)
    if not lungs.any():
        return out
    box = _bbox(lungs)
    inl = lungs[box] > 0
    halo = _box_filter(np.ascontiguousarray(vessels[box], dtype=bool), _radii(halo_mm, sp, 1), grow=True)
    r_rim = _radii(rim_mm, sp, 1)
    interior = _box_filter(inl, r_rim, grow=False)
    aerated = interior & (hu[box] < aerated_hu)
    near_aerated = _box_filter(aerated, [r + 1 for r in r_rim], grow=True)
    out[box] = inl & (halo | (~interior & near_aerated))
    return out
