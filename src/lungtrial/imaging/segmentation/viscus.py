"""Gas in the stomach or the colon that the coarse grid joins to a lung through the diaphragm (each constant below:
its unit and its anatomical reason)."""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage

from ._grid import _PLANE4, AIR_HU, LEFT, RIGHT, BlockMask, _ball, _bbox, _block_sum, _dilate, _erode

#: mm. The diaphragm between a lung's base and gas in the stomach or the colon under it is 2-5 mm of muscle. On the
#: coarse grid's blocks (about 3.5 mm) air on both sides averages it away and the gas joins the lung; at full
#: resolution what is left of the join is a neck of partial-volume voxels thinner than this radius, so that eroding
#: the aerated voxels by a ball of this radius parts them.
NECK_MM = 1.5
#: ml. Smallest gas pocket looked at: a smaller one changes the lung's volume little, and a lobe's tip or a recess
#: cut off by a thick slice is of that size.
VISCUS_MIN_ML = 20.0
#: Largest share of a pocket's volume (its holes filled in each slice) that tissue denser than air (-500 HU) may
#: take for the pocket to be gas in a hollow organ: lung parenchyma holds vessels everywhere (a few % of its volume
#: at full resolution), the gas in a stomach or a colon holds nothing.
VISCUS_MAX_TISSUE_SHARE = 0.005
#: HU. Gas in a hollow organ is darker than the lung it was joined to by at least this much (the median of each):
#: it is gas alone, where aerated parenchyma is about a tenth tissue and blood (-850 against -950 to -1000 HU).
VISCUS_CONTRAST_HU = 50.0


def _fill_planes(mask: np.ndarray) -> np.ndarray:
    """Holes of ``mask`` filled in each axial plane."""
    return ndimage.binary_fill_holes(mask, structure=_PLANE4)


def _own_part(parts: np.ndarray, sizes: np.ndarray, top: np.ndarray) -> int:
    """The label of the lung's own part among ``parts`` (labelled, ``sizes`` their voxel counts): the one with most
    voxels in ``top``, the box's top slices, where the lung runs on into its upper half; the largest when none
    reaches them."""
    at_top = np.bincount(top.ravel(), minlength=sizes.size)
    at_top[0] = 0
    if at_top.any():
        return int(np.argmax(at_top))
    sizes = sizes.copy()
    sizes[0] = 0
    return int(np.argmax(sizes))


def drop_viscus_gas(
    hu: np.ndarray, coarse_hu: np.ndarray, picked: np.ndarray, factors, spacing
) -> tuple[np.ndarray, np.ndarray]:
    """The picked lungs (coarse grid, 1 right, 2 left) without the gas of a stomach or a colon joined to them.

    For each lung, its aerated voxels in its lower half (below -500 HU at full resolution, inside the lung's coarse
    blocks) are eroded by a ball of :data:`NECK_MM`. A part that this parts from the lung's own part (the one
    running on into the upper half) is gas in a hollow organ when it holds at least :data:`VISCUS_MIN_ML`, lies
    lower than the lung's part (under the dome), is darker than it by :data:`VISCUS_CONTRAST_HU` and holds no
    vessel (:data:`VISCUS_MAX_TISSUE_SHARE`); the coarse blocks where that gas outweighs the lung's own aerated
    voxels are taken out, with the pieces beside it that no longer join the lung.

    Parameters
    ----------
    hu : (z, y, x) int16 HU at full resolution.
    coarse_hu : (cz, cy, cx) block-mean HU of the coarse grid; a lung whose lower half holds less than
        :data:`VISCUS_MIN_ML` of blocks darker than the whole lung's median by :data:`VISCUS_CONTRAST_HU` is not
        looked at further.
    picked : (cz, cy, cx) uint8 coarse lung labels (:func:`.lungs.pick_lungs`).
    factors : (fz, fy, fx) scan voxels per coarse block.
    spacing : (dz, dy, dx) of ``hu``, mm.

    Returns
    -------
    (labels, removed): the coarse labels without the gas, and the coarse blocks taken out (bool).
    """
    sp = np.asarray(spacing, float)
    factors = np.asarray(factors, int)
    voxel_ml = float(np.prod(sp)) / 1000.0
    ball = _ball(NECK_MM, sp)
    out = picked.copy()
    removed = np.zeros(picked.shape, dtype=bool)
    for side in (RIGHT, LEFT):
        coarse = picked == side
        if not coarse.any():
            continue
        cbox = _bbox(coarse)
        # gas under a dome lies in the lower half of the lung: only that half is looked at
        top = int(np.ceil(np.median(np.nonzero(coarse)[0]))) + 1
        cbox = (slice(cbox[0].start, top), *cbox[1:])
        reference = float(np.median(coarse_hu[coarse]))
        dark = np.count_nonzero(coarse_hu[cbox][coarse[cbox]] < reference - VISCUS_CONTRAST_HU)
        if dark * float(np.prod(sp * factors)) / 1000.0 < VISCUS_MIN_ML:
            continue  # no gas darker than the lung there: nothing to part
        fbox = tuple(slice(s.start * f, min(n, s.stop * f)) for s, f, n in zip(cbox, factors, hu.shape))
        h = hu[fbox]
        air = BlockMask(coarse[cbox], factors, h.shape).full() & (h < AIR_HU)
        parts, n = cc3d.connected_components(_erode(air, ball), connectivity=6, return_N=True)
        if n < 2:
            continue
        sizes = np.bincount(parts.ravel())
        sizes[0] = 0
        main = _own_part(parts, sizes, parts[-factors[0] :])
        in_main = parts == main
        main_hu = float(np.median(h[in_main][::7]))
        main_z = float(np.nonzero(in_main.any(axis=(1, 2)))[0].mean())
        del in_main
        gas = np.zeros(air.shape, dtype=bool)
        objs = ndimage.find_objects(parts)
        for k in np.flatnonzero(sizes * voxel_ml >= VISCUS_MIN_ML):
            if k == main:
                continue
            sl = objs[k - 1]
            part = parts[sl] == k
            pz = np.nonzero(part.any(axis=(1, 2)))[0] + sl[0].start
            if pz.mean() >= main_z or float(np.median(h[sl][part])) > main_hu - VISCUS_CONTRAST_HU:
                continue
            grown = np.zeros(air.shape, dtype=bool)
            grown[sl] = part
            grown = _dilate(grown, ball) & air  # the part's voxels the erosion took, back
            gbox = _bbox(grown)
            filled = _fill_planes(grown[gbox])
            tissue = np.count_nonzero(filled & (h[gbox] >= AIR_HU))
            if tissue > VISCUS_MAX_TISSUE_SHARE * np.count_nonzero(filled):
                continue
            gas |= grown
        if not gas.any():
            continue
        mine = _block_sum(gas.view(np.uint8), factors)
        rest = _block_sum((air & ~gas).view(np.uint8), factors)
        drop = coarse[cbox] & (mine > rest)
        kept = coarse[cbox] & ~drop
        # a piece that no longer joins the lung's own part (running on above) and touched the gas goes with it (the
        # organ's wall averaged with its gas)
        lab, m = ndimage.label(kept, structure=np.ones((3, 3, 3), bool))
        if m > 1:
            own = _own_part(lab, np.bincount(lab.ravel()), lab[-1])
            touching = np.unique(lab[ndimage.binary_dilation(drop, structure=np.ones((3, 3, 3), bool))])
            for j in touching[(touching > 0) & (touching != own)]:
                kept[lab == j] = False
        view = out[cbox]
        gone = coarse[cbox] & ~kept
        view[gone] = 0
        removed[cbox] |= gone
    return out, removed
