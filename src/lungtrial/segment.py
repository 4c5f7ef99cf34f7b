"""Lung segmentation (right/left labels, airways excluded, lesions repaired), vessel and opacity-exclusion masks.

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
4. Ground glass: hazy voxels (-500 to -250 HU; no solid tissue, not even fat, is that light) that hold an
   ellipsoid of radius 2.5 mm (at least one voxel along each axis) join the air: the partial-volume band along the
   chest wall, the mediastinum and the diaphragm (also where a thick slice cuts the dome) is thinner than that. A
   lung that is almost all ground glass is thereby still found.
5. The largest remaining region is one lung, or both lungs joined at the anterior/posterior junction; joined
   lungs are split by erosion and nearest-seed assignment. The other lung is the largest region on the other
   side of the body's midline reaching above the first lung's centre (bowel gas lies below the diaphragm). The
   hazy edges of each lung's ground glass are added.
6. Lesion repair, per lung, in axial, coronal and sagittal planes: holes enclosed by the lung (vessels,
   lesions; axial only) are filled, and pockets between the lung and its convex hull are added when their chord
   runs along the chest wall (subpleural ground glass and consolidation, also posterior-basal lesions that fill
   the whole back of a slice). Pockets whose chord dives into the body (mediastinum, heart, spine, liver dome)
   are not added, except what lies within 6 mm of the lung's own ground glass where it lines a quarter of the
   pocket, and within 20 mm where it lines half of a pocket at most 20 mm deep (consolidation inside its ground
   glass, also against the mediastinum). Both need lung at most 40 mm below (the liver under the dome has none),
   except the 6 mm rule in axial planes. Bone (> 150 HU) and the airway are never added.
7. The boundary is refined at full resolution with the -500 HU threshold within one coarse voxel of the coarse
   boundary; ground glass and the repaired pockets keep their coarse extent.

Known limits: consolidation against the mediastinum or resting on the diaphragm dome, with no ground glass
lining it, cannot be told from the mediastinum or the liver by HU and is left out where the lung's outline does
not reveal it; so is consolidation that fills the whole posterior costophrenic recess (it lies outside the
aerated lung's convex hull in every plane). The distal end of a main bronchus, where it merges with the lung in
the axial plane at about 2 mm, stays in the lung.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["segment_lungs", "segment_vessels", "opacity_exclusion"]

AIR_HU = -500.0  # half-way between aerated lung (about -850 HU) and soft tissue (about 40 HU)
BONE_HU = 150.0  # denser than any consolidation
HAZY_HU = -250.0  # ground glass stays below; fat (about -100 HU) and every solid tissue lie above
RIGHT, LEFT = 1, 2

# in-plane (axial) connectivity structures for 3D arrays: each slice is labelled on its own
_PLANE4 = np.zeros((3, 3, 3), dtype=bool)
_PLANE4[1] = ndimage.generate_binary_structure(2, 1)


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


def _block_reduce(vol: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Block mean of ``vol`` as float32; edge blocks are averaged over the voxels they hold."""
    fz, fy, fx = (int(f) for f in factors)
    nz, ny, nx = vol.shape
    acc_type = np.int32 if vol.dtype.kind in "biu" and vol.dtype.itemsize <= 2 else np.float64
    acc = np.zeros((-(-nz // fz), -(-ny // fy), -(-nx // fx)), dtype=acc_type)
    for i in range(fz):  # one strided view per position within the block: no full-size temporary
        for j in range(fy):
            for k in range(fx):
                part = vol[i::fz, j::fy, k::fx]
                acc[: part.shape[0], : part.shape[1], : part.shape[2]] += part
    out = acc.astype(np.float32)
    for axis, (n, f) in enumerate(((nz, fz), (ny, fy), (nx, fx))):
        first = np.arange(out.shape[axis]) * f
        count = (np.minimum(first + f, n) - first).astype(np.float32)
        out /= count.reshape([-1 if a == axis else 1 for a in range(3)])
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


def _fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the holes of each axial slice filled (background not 4-connected to the slice's border)."""
    lab, n = ndimage.label(~mask, structure=_PLANE4)
    border = np.zeros(n + 1, dtype=bool)
    for edge in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        border[edge] = True
    border[0] = True
    return mask | ~border[lab]


def _body(dense: np.ndarray) -> np.ndarray:
    """Largest dense connected region with its holes filled slice by slice (bool, coarse grid)."""
    lab, n = ndimage.label(dense)
    if n == 0:
        raise ValueError("no body found: no voxel is denser than -500 HU")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == int(np.argmax(sizes))
    return _fill_holes_2d(body)


def _airways(inner_air: np.ndarray, body: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """Trachea and extrapulmonary bronchi on the coarse grid (bool).

    Axial air regions are linked to those of the next caudal slice that they overlap once grown by 4 mm in the
    plane. The trachea is the largest medial air region (within 30 mm of the body's midline, 50-1500 mm^2) of the
    most superior 10 mm holding one; the airway grows caudally through regions of 50-1500 mm^2 that do not more
    than double from slice to slice. A bronchus stops where it merges with lung parenchyma in the axial plane.
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

    # caudal links: a small region in slice k -> regions in slice k-1 within 4 mm in the plane (oblique bronchi
    # move sideways between thick slices); only within 80 mm of the trachea's axis
    x0 = int(round(cx[seed]))
    half = int(np.ceil(80.0 / dx))
    xs = slice(max(0, x0 - half), x0 + half + 1)
    sub = np.where(small[lab[: z_of[seed] + 1, :, xs]], lab[: z_of[seed] + 1, :, xs], 0)
    ry, rx = (max(1, int(round(4.0 / s))) for s in (dy, dx))
    upper = ndimage.grey_dilation(sub[1:], footprint=np.ones((1, 2 * ry + 1, 2 * rx + 1), dtype=bool))
    lower = sub[:-1]
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


def _hazy_structure(cspacing: np.ndarray) -> np.ndarray:
    """Ellipsoid of radius 2.5 mm, at least one voxel along each axis (coarse grid)."""
    r = [max(1, int(round(2.5 / s))) for s in cspacing]
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((g / k) ** 2 for g, k in zip(grids, r)) <= 1.0 + 1e-9


def _hazy_core(hazy: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """Ground-glass cores: the hazy voxels (-500 to -250 HU) that hold an ellipsoid of radius 2.5 mm (>= 1 voxel).

    The partial-volume band between aerated lung and the chest wall, the mediastinum or the diaphragm (also where
    a thick slice cuts the diaphragm dome) is thinner than that and is not a core.
    """
    return ndimage.binary_opening(hazy, structure=_hazy_structure(cspacing))


def _hazy_edges(lungs: np.ndarray, hazy: np.ndarray, core: np.ndarray, cspacing: np.ndarray) -> np.ndarray:
    """``lungs`` with the hazy voxels within one structuring element of their ground-glass cores (labels kept)."""
    out = lungs.copy()
    mine = core & (lungs > 0)
    if not mine.any():
        return out
    grown = ndimage.grey_dilation(np.where(mine, lungs, 0).astype(np.uint8), footprint=_hazy_structure(cspacing))
    add = hazy & (out == 0) & (grown > 0)
    out[add] = grown[add]
    return out


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
        kx = np.nonzero(lab[o] == k)[2]
        other = (kx.mean() + o[2].start < midline_x) != (side == RIGHT)
        if other and o[0].stop - 1 >= zc:
            out[lab == k] = LEFT if side == RIGHT else RIGHT
            break
    return out


def _depth(body: np.ndarray, cspacing: np.ndarray, axis: int, planes: np.ndarray) -> np.ndarray:
    """Distance (mm) to the outside of the body within each plane normal to ``axis`` (only ``planes``; 0 elsewhere).

    The borders of the volume are not outside: the body goes on beyond the field of view.
    """
    out = np.zeros(body.shape, dtype=np.float32)
    b, o = np.moveaxis(body, axis, 0), np.moveaxis(out, axis, 0)
    pix = [s for i, s in enumerate(cspacing) if i != axis]
    for k in planes:
        o[k] = ndimage.distance_transform_edt(b[k], sampling=pix)
    return out


def _pockets(
    lung: np.ndarray,
    allowed: np.ndarray,
    depth: np.ndarray,
    pix: tuple[float, float],
    wall_mm: float,
    hu: np.ndarray,
    support: np.ndarray,
    near_needs_support: bool,
    medial: tuple[float, float] | None = None,
    lined_mm: float = 20.0,
) -> np.ndarray:
    """Lesion pockets of one lung in the planes ``lung[k]`` (bool, same shape as ``lung``).

    A pocket is a region between the lung and its convex hull; its chord is the part of its outline on the hull.
    ``depth`` is the distance (mm) below the skin and ``hu`` the coarse HU volume, both in the same planes.

    - A lesion against the chest wall leaves a pocket whose chord runs along the chest wall: at most
      ``wall_mm`` + 35 mm below the skin, with ends at most ``wall_mm`` + 25 mm deep, and no deeper than its deeper
      end plus 4 mm and the sagitta of a 150 mm radius body outline over the chord. Pockets of the mediastinum,
      heart, spine or liver dome have chords through the depth of the body. In axial planes (``medial``: the
      medial unit vector in plane coordinates) pockets medial of the lung's centre are rejected as well.
    - Of a pocket rejected so, at least a quarter hazy (-650 to -250 HU, away from the lung's partial-volume edge:
      ground glass, never solid tissue), the ground glass and what lies within 6 mm of it (the consolidation it
      surrounds) are added.
    - Of a rejected pocket whose outline is lined by the lung's own ground glass (-650 to -250 HU, at least 6 mm
      thick), what lies within 6 mm of that ground glass where it lines a quarter of the outline (only voxels
      with ``support`` if ``near_needs_support``), and within ``lined_mm`` where it lines half of it, the pocket
      reaches at most ``lined_mm`` behind its chord and the voxel has ``support``: consolidation within its
      ground glass, also against the mediastinum. ``support`` marks the voxels with this lung at most 40 mm
      below them, which the liver under the dome lacks; the heart lies behind aerated lung.
    - In axial planes, holes enclosed by the lung (vessels, lesions) are added.

    Accepted chord pockets grow across the chord, which cuts off the pleural cap of the lesion, up to the chest
    wall: tissue no shallower than the chord ends, within the sagitta of a 100 mm radius pleura over the chord.
    """
    from skimage.morphology import convex_hull_image

    cross = ndimage.generate_binary_structure(2, 1)
    margin = [int(np.ceil(12.0 / p)) + 1 for p in pix]
    out = np.zeros(lung.shape, dtype=bool)
    for k in np.flatnonzero(lung.any(axis=(1, 2))):
        sl = lung[k]
        rows, cols = np.flatnonzero(sl.any(axis=1)), np.flatnonzero(sl.any(axis=0))
        box = tuple(
            slice(max(0, idx[0] - m), idx[-1] + 1 + m) for idx, m in zip((rows, cols), margin)
        )
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
        near_lung = ndimage.binary_dilation(crop, structure=np.ones((3, 3), bool))
        ends = np.where(near_lung, chord, 0)
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
        # ground glass away from the lung's partial-volume edge
        hazy = (hu[k][box] > -650.0) & (hu[k][box] < -250.0) & ~near_lung
        frac = np.asarray(ndimage.mean(hazy, lab, idx), dtype=float)
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
        # hazy pockets: their ground glass and what lies within 6 mm of it (the consolidation it surrounds)
        hazy_pocket = np.concatenate([[False], ~ok & (frac >= 0.25)])[lab]
        if hazy_pocket.any():
            near = ndimage.binary_dilation(
                hazy & hazy_pocket, structure=cross, iterations=int(round(6.0 / min(pix))), mask=hazy_pocket
            )
            out[k][box] |= near
        # pockets lined by the lung's own ground glass (at least 6 mm thick: not the partial-volume edge)
        if not ok.all():
            plane = (out[k][box], crop, hull, lab, ~ok, hu[k][box], support[k][box])
            _add_lined(*plane, near_needs_support, pix, lined_mm)
        accepted = np.flatnonzero(ok & has_chord)
        if accepted.size == 0:
            continue
        free = allowed[k][box] & ~hull
        grow = np.zeros_like(free)
        reach = 0.0
        for i in accepted:
            cr, cc = np.nonzero(chord == i + 1)
            # the chord as a segment from a along u (mm); grow only across it, within its shadow
            pts = np.column_stack([cr * pix[0], cc * pix[1]])
            span = pts.max(0) - pts.min(0)
            a = pts[np.argmin(pts @ span)]
            u = pts[np.argmax(pts @ span)] - a
            ll = float(u @ u)
            if ll == 0:
                continue
            gr, gc = np.nonzero(free & (d >= dend[i] - 0.5 * min(pix)))
            q = np.column_stack([gr * pix[0], gc * pix[1]]) - a
            t = (q @ u) / ll
            dist = np.abs(q[:, 0] * u[1] - q[:, 1] * u[0]) / np.sqrt(ll)
            sag = min(2.0 + ll / 800.0, 12.0)
            sel = (t > 0.05) & (t < 0.95) & (dist <= sag)
            grow[gr[sel], gc[sel]] = True
            reach = max(reach, sag)
        if reach > 0:
            seed = keep[lab]
            n_it = int(np.ceil(reach / min(pix)))
            out[k][box] |= ndimage.binary_dilation(seed, structure=cross, iterations=n_it, mask=grow | seed)
    return out


def _add_lined(
    out: np.ndarray,
    crop: np.ndarray,
    hull: np.ndarray,
    lab: np.ndarray,
    rejected: np.ndarray,
    hu: np.ndarray,
    support: np.ndarray,
    near_needs_support: bool,
    pix: tuple[float, float],
    lined_mm: float,
) -> None:
    """Add to ``out`` (in place) the parts of ``rejected`` pockets that the lung's own ground glass lines.

    One plane: ``crop`` is the lung, ``hull`` its convex hull, ``lab`` the pockets (1..n) and ``rejected`` (n,) the
    pockets not accepted otherwise. See :func:`_pockets` for the rules.
    """
    cross = ndimage.generate_binary_structure(2, 1)
    glass = ndimage.binary_opening(crop & (hu > -650.0) & (hu < -250.0), structure=cross)
    if not glass.any():
        return
    n = rejected.size
    rim = ndimage.binary_dilation(crop, structure=cross) & ~crop
    n_border = np.maximum(np.bincount(np.where(rim, lab, 0).ravel(), minlength=n + 1)[1:], 1)
    touching = ndimage.binary_dilation(glass, structure=cross) & rim
    n_glass = np.bincount(np.where(touching, lab, 0).ravel(), minlength=n + 1)[1:]
    near = rejected & (n_glass >= 0.25 * n_border)
    far = rejected & (n_glass >= 0.5 * n_border)
    if far.any():
        behind = ndimage.distance_transform_edt(hull, sampling=pix)
        far &= np.asarray(ndimage.maximum(behind, lab, np.arange(1, n + 1)), dtype=float) <= lined_mm
    for which, reach, needs_support in ((near, 6.0, near_needs_support), (far, lined_mm, True)):
        if not which.any():
            continue
        lined = np.concatenate([[False], which])[lab]
        if needs_support:
            lined &= support
        if lined.any():
            out |= lined & (ndimage.distance_transform_edt(~(touching & lined), sampling=pix) <= reach)


def _below(lung: np.ndarray, dz: float, reach_mm: float = 40.0) -> np.ndarray:
    """Voxels with ``lung`` at most ``reach_mm`` below them in their (y, x) column (bool)."""
    n = max(1, int(round(reach_mm / dz)))
    count = np.zeros((lung.shape[0] + 1,) + lung.shape[1:], dtype=np.int32)
    np.cumsum(lung, axis=0, dtype=np.int32, out=count[1:])
    out = np.zeros(lung.shape, dtype=bool)
    out[1:] = count[1:-1] > count[np.maximum(np.arange(1, lung.shape[0]) - n, 0)]
    return out


def _repair(lungs: np.ndarray, coarse: np.ndarray, body: np.ndarray, airway: np.ndarray, cspacing) -> np.ndarray:
    """Add to each lung its enclosed holes (axial) and its lesion pockets in axial, coronal and sagittal planes.

    Depth below the skin is the distance to the outside of the body within the axial plane, except for coronal
    planes, where it is measured within the coronal plane (distance to the lateral body wall): every point of a
    coronal plane near the back or the front is close to the skin in the axial sense.
    """
    out = lungs.copy()
    allowed = body & (coarse < BONE_HU) & (lungs == 0) & ~airway
    inlung = lungs > 0
    zs = np.flatnonzero(inlung.any(axis=(1, 2)))
    axial = _depth(body, cspacing, 0, zs)
    below = {label: _below(lungs == label, cspacing[0]) for label in (RIGHT, LEFT)}
    for axis in (0, 1, 2):  # axial planes (y, x), coronal planes (z, x), sagittal planes (z, y)
        planes = np.flatnonzero(inlung.any(axis=tuple(i for i in range(3) if i != axis)))
        depth = _depth(body, cspacing, 1, planes) if axis == 1 else axial
        pix = tuple(s for i, s in enumerate(cspacing) if i != axis)
        for label, medial_x in ((RIGHT, 1.0), (LEFT, -1.0)):
            lung = lungs == label
            if not lung.any():
                continue
            # chest wall thickness: median over planes of the lung's smallest depth below the skin
            dl = np.moveaxis(np.where(lung, depth, np.inf), axis, 0).min(axis=(1, 2))
            wall = float(np.median(dl[np.isfinite(dl)]))
            add = _pockets(
                *(np.moveaxis(v, axis, 0) for v in (lung, allowed, depth)),
                pix,
                wall,
                np.moveaxis(coarse, axis, 0),
                np.moveaxis(below[label], axis, 0),
                axis != 0,
                medial=(0.0, medial_x) if axis == 0 else None,
            )
            add = np.moveaxis(add, 0, axis)
            out[add & (out == 0)] = label
    # what the added pockets now enclose (consolidation inside its ground glass)
    for label in (RIGHT, LEFT):
        holes = _fill_holes_2d(out == label) & (out == 0) & allowed
        out[holes] = label
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
    hazy = body & ~air & (coarse < HAZY_HU) & ~airway
    glass = _hazy_core(hazy, csp)
    picked = _hazy_edges(_pick_lungs((inner | glass) & ~airway, body, csp), hazy, glass, csp)
    aerated = np.where(air, picked, 0).astype(np.uint8)
    lungs_c = _repair(picked, coarse, body, airway, csp)
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

    def up(plane: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(plane, fy, axis=0)[:ny], fx, axis=1)[:, :nx]

    out = np.zeros(hu.shape, dtype=np.uint8)
    for cz in range(lungs_c.shape[0]):
        if not grown[cz].any():
            continue
        f2, b2, g2 = up(fixed[cz]), up(band[cz]), up(grown[cz])
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


def _thin(dense: np.ndarray, spacing: np.ndarray, blob_radius_mm: float) -> np.ndarray:
    """The part of ``dense`` that is not blob-like (bool, in place of ``dense``).

    A blob holds a ball of radius ``blob_radius_mm``: opening on a grid of about 2 mm where a voxel is dense when at
    least half of it is; blobs are grown by one coarse voxel to take their edges back.
    """
    factors = _block_factors(spacing, 2.0)
    csp = spacing * factors
    solid = _block_reduce(dense, factors) >= 0.5
    blob = ndimage.binary_opening(solid, structure=_ball(blob_radius_mm, csp))
    blob = ndimage.binary_dilation(blob, structure=ndimage.generate_binary_structure(3, 1))
    dense &= ~_upsample(blob, factors, dense.shape)
    return dense


def segment_vessels(
    hu: np.ndarray, lungs: np.ndarray, spacing, *, threshold_hu: float = -300.0, blob_radius_mm: float = 4.0
) -> np.ndarray:
    """Pulmonary vessels: thin dense structures inside the lungs, as distinct from blob-like consolidation.

    Dense voxels (> ``threshold_hu``) inside ``lungs`` are vessels unless they belong to a blob, a dense region that
    holds a ball of radius ``blob_radius_mm``; so vessels up to about ``2 * blob_radius_mm + 2`` mm wide are
    vessels while consolidation at least that thick, subpleural or not, is not. The outermost voxel layer of the
    lungs (partial volume with the chest wall) is never vessel.

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
    inl = lungs[box] > 0
    dense = _thin(inl & (hu[box] > threshold_hu), sp, blob_radius_mm)
    out[box] = dense & _box_filter(inl, [1, 1, 1], grow=False)
    return out


def opacity_exclusion(
    hu: np.ndarray,
    lungs: np.ndarray,
    spacing,
    *,
    vessels: np.ndarray | None = None,
    aerated_hu: float = -700.0,
    blob_radius_mm: float = 4.0,
) -> np.ndarray:
    """Lung voxels that must not count as opacity: vessels and every other thin structure denser than aerated lung.

    Opacity (> ``aerated_hu`` HU) that is not blob-like (holds no ball of radius ``blob_radius_mm``, see
    :func:`segment_vessels`) is excluded: vessels with their blurred edges, the partial-volume rim along the pleura,
    the mediastinum and the diaphragm, fissures and noise speckle. Ground glass and consolidation, also against
    the chest wall, are blob-like and stay, edges included.

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume in HU.
    lungs : (z, y, x) array
        Lung mask or labels (non-zero is lung).
    spacing : (dz, dy, dx)
        Voxel size in mm.
    vessels : (z, y, x) bool, optional
        Vessel mask to include; computed with :func:`segment_vessels` when omitted.
    aerated_hu : float
        Upper HU bound of aerated lung (the lower bound of ground glass).
    blob_radius_mm : float
        Radius (mm) of the smallest ball an opacity holds.

    Returns
    -------
    excluded : (z, y, x) bool, inside ``lungs``; it contains ``vessels``.
    """
    hu, sp = _check(hu, spacing)
    lungs = np.asarray(lungs)
    if vessels is None:
        vessels = segment_vessels(hu, lungs, sp, blob_radius_mm=blob_radius_mm)
    out = np.zeros(hu.shape, dtype=bool)
    if not lungs.any():
        return out
    box = _bbox(lungs)
    inl = lungs[box] > 0
    out[box] = _thin(inl & (hu[box] > aerated_hu), sp, blob_radius_mm) | (inl & vessels[box])
    return out
