"""Lung segmentation on chest CT: right and left lungs (vessels and opacities included, airways excluded), vessels
and the voxels never counted as opacity.

The method, stage by stage, is explained with pictures in ``docs/segmentation.md``; each stage is a module:

- :mod:`.body` -- the patient's body, cut loose from tables, trays and mattresses, also when the field of view cuts it;
- :mod:`.airway` -- trachea and main bronchi;
- :mod:`.lungs` -- the two lungs, chosen because they hang from the airway (never by size alone);
- :mod:`.viscus` -- gas in the stomach or the colon that the coarse grid joins to a lung through the diaphragm;
- :mod:`.limits` -- the anatomical limits a lung never crosses: the diaphragm and the rib cage;
- :mod:`.repair` -- lesions that the aerated lung does not reveal by itself (enclosed and pleural pockets,
  consolidation continued by its density), kept within the limits;
- :mod:`.refine` -- the boundary at full resolution;
- :mod:`.nodules` -- a nodule that the lung wraps but whose contact with the mediastinum or the wall the outline
  leaves out;
- :mod:`.prior` -- optionally, the same patient's lungs at another timepoint, registered onto the scan, as the
  prior for where the pleura lies under consolidation as dense as the wall;
- :mod:`.vessels` -- vessels and the opacity exclusion (pleural rim, vessel halo).

Conventions: volumes are ``(z, y, x)`` arrays in HU, ``spacing`` is ``(dz, dy, dx)`` in mm, x increases to the
patient's left, y to posterior and z to superior, so the right lung lies at low x. Labels: 0 background, 1 right
lung, 2 left lung. Topology is decided on a block-averaged grid of about :data:`COARSE_MM` voxels; the boundary is
then refined at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lungtrial import parallel
from lungtrial.memory import new_volume

from ._grid import AIR_HU, COARSE_MM, HAZY_HU, LEFT, RIGHT, BlockMask, _block_reduce, _check, _coarse_factors
from .airway import _airways, _bronchus_ends
from .body import body_mask
from .limits import limit_additions, rib_cage, viscus_pieces
from .lungs import _hazy_core, _hazy_edges, pick_lungs
from .nodules import add_wrapped_nodules
from .prior import prior_additions
from .refine import _edge_threshold, _refine
from .repair import _continue_consolidation, _depths, _repair
from .vessels import opacity_exclusion, segment_vessels
from .viscus import drop_viscus_gas

__all__ = [
    "add_prior",
    "COARSE_MM",
    "BlockMask",
    "LEFT",
    "RIGHT",
    "Segmentation",
    "opacity_exclusion",
    "segment",
    "segment_lungs",
    "segment_vessels",
]


@dataclass
class Segmentation:
    """What :func:`segment` found.

    Attributes
    ----------
    labels : (z, y, x) uint8
        0 background, 1 right lung, 2 left lung, at the scan's resolution.
    airway_found : bool
        Whether the lungs were anchored on a trachea found in the scan (if not, the largest air regions either side
        of the midline were taken, see :func:`.lungs.pick_lungs`).
    added_ml : float
        Volume added by the lesion repair beyond the aerated lung (coarse grid, ml).
    limited_ml : float
        Volume the repair would have added beyond the anatomical limits (below the diaphragm, outside the rib cage,
        thin strips along the wall, next to gas that is not lung) and that was left out, with the gas of a stomach
        or a colon that the coarse grid joined to a lung (:mod:`.viscus`) (coarse grid, ml).
    prior_ml : float
        Volume added by the serial prior (:mod:`.prior`; 0 without a prior), ml.
    held_back : (cz, cy, cx) bool or None
        What was left out at the anatomical limits (``limited_ml``), on the coarse grid of ``coarse_factors``
        scan voxels per block; :meth:`held_back_mask` reads it at the scan's resolution.
    coarse_factors : (fz, fy, fx)
        Scan voxels per coarse block along each axis.
    """

    labels: np.ndarray
    airway_found: bool = True
    added_ml: float = 0.0
    limited_ml: float = 0.0
    prior_ml: float = 0.0
    held_back: np.ndarray | None = None
    coarse_factors: tuple[int, int, int] = (1, 1, 1)

    def held_back_mask(self) -> BlockMask | None:
        """``held_back`` read at the scan's resolution (indexed like ``labels``, without making the whole volume),
        or None when nothing was held back."""
        if self.held_back is None or not self.held_back.any():
            return None
        return BlockMask(self.held_back, self.coarse_factors, self.labels.shape)


def segment(hu: np.ndarray, spacing, *, coarse_mm: float = COARSE_MM, prior: np.ndarray | None = None) -> Segmentation:
    """Segment the right and left lungs of a chest CT volume (see :func:`segment_lungs`), with what was found on
    the way (:class:`Segmentation`).

    ``prior`` (optional, the scan's grid): the same patient's lung labels (1 right, 2 left) or mask at another
    timepoint, registered onto this scan; dense tissue it covers next to the lungs is added (:mod:`.prior`)."""
    hu, sp = _check(hu, spacing)
    if not np.isfinite(coarse_mm) or coarse_mm <= 0:
        raise ValueError(f"coarse_mm must be a positive number of mm, got {coarse_mm!r}")
    factors = _coarse_factors(sp, coarse_mm)
    csp = sp * factors
    voxel_ml = float(np.prod(csp)) / 1000.0
    with parallel.pool(1, beside_caller=True) as pool:
        # the output's pages are mapped on another thread while the coarse stage runs
        prepared = pool.submit(new_volume, hu.shape, np.uint8, True)
        coarse = _block_reduce(hu, factors)
        air = coarse < AIR_HU
        body = body_mask(coarse, csp)
        depths = pool.submit(_depths, body, csp)
        inner = air & body
        airway = _airways(inner, body, csp)
        ends = _bronchus_ends(airway, inner, coarse, csp)
        hazy = body & ~air & (coarse < HAZY_HU) & ~airway
        glass = _hazy_core(hazy, csp)
        picked, anchored = pick_lungs((inner | glass) & ~airway, body, airway | ends, csp)
        picked = _hazy_edges(picked, hazy, glass, csp)
        picked, viscus = drop_viscus_gas(hu, coarse, picked, factors, sp)
        picked[ends] = 0
        airway |= ends
        aerated = np.where(air, picked, 0).astype(np.uint8)
        # the pockets are kept within the anatomical limits; consolidation is then continued from them by its
        # density (which needs contrast against the tissue around the lungs, see repair.py), within the rib cage
        cage = rib_cage(coarse, aerated > 0, csp)
        pockets, beyond = limit_additions(
            _repair(picked, coarse, body, airway, csp, depths.result()), picked, aerated, coarse, csp, cage
        )
        lungs_c, grown, grown_limit, grown_noise = _continue_consolidation(pockets, coarse, aerated, body, airway, csp)
        # (never next to gas that is not lung: the partial volume of the stomach's or the bowel's gas and fluid;
        # a piece of it that reaches such gas inside the body and lies mostly below the diaphragm floor is the
        # viscus's wall and content, left out whole)
        free_gas = air & (picked == 0) & ~airway
        gas = ndimage.binary_dilation(free_gas, structure=np.ones((3, 3, 3), bool))
        continued = (lungs_c > 0) & (pockets == 0)
        outside = continued & (~cage | gas)
        outside |= viscus_pieces(continued, lungs_c, aerated, free_gas & body, csp)
        lungs_c[outside] = 0
        beyond |= outside | viscus
        if grown is not None:
            grown &= lungs_c > 0
        if np.all(factors == 1):
            grown = None  # the coarse grid is the scan's own: the coarse decision is the finest there is
        threshold, parenchyma = _edge_threshold(coarse, lungs_c, aerated, body)
        out = prepared.result()
    labels = _refine(hu, lungs_c, aerated, airway, factors, threshold, out, grown, grown_limit, grown_noise, coarse, parenchyma)
    add_wrapped_nodules(hu, labels, sp)  # a nodule against the mediastinum, which the pockets leave out
    prior_ml = 0.0 if prior is None else add_prior(hu, labels, prior, sp)
    return Segmentation(
        labels=labels,
        airway_found=anchored,
        added_ml=float(np.count_nonzero((lungs_c > 0) & (picked == 0))) * voxel_ml,
        limited_ml=float(np.count_nonzero(beyond)) * voxel_ml,
        prior_ml=prior_ml,
        held_back=beyond,
        coarse_factors=tuple(int(f) for f in factors),
    )


def add_prior(hu: np.ndarray, labels: np.ndarray, prior: np.ndarray, spacing) -> float:
    """Add to ``labels`` (in place; 1 right, 2 left, the scan's grid) what the serial ``prior`` brings
    (:func:`.prior.prior_additions`): the last step of :func:`segment` with a prior, for lungs segmented already.
    Returns the volume added, ml."""
    add = prior_additions(hu, labels, prior, spacing)
    mine = add > 0
    labels[mine] = add[mine]
    return float(np.count_nonzero(mine)) * float(np.prod(spacing)) / 1000.0


def segment_lungs(hu: np.ndarray, spacing, *, coarse_mm: float = COARSE_MM) -> np.ndarray:
    """Label the right and left lungs of a chest CT volume.

    Parameters
    ----------
    hu : (z, y, x) array
        CT volume in Hounsfield units (int16 or float), x towards the patient's left, y posterior, z superior.
    spacing : (dz, dy, dx)
        Voxel size in mm; anisotropic voxels (slices 0.6-5 mm, pixels 0.5-2.5 mm) are handled.
    coarse_mm : float
        Voxel size (mm) of the grid where topology and lesion repair are decided.

    Returns
    -------
    labels : (z, y, x) uint8
        0 background, 1 right lung, 2 left lung. Lungs include their vessels and their opacities; the trachea and
        the main bronchi, outside air, the table, bowel and stomach gas, and everything below the diaphragm or
        outside the rib cage are excluded.

    Raises
    ------
    ValueError
        If the arrays are malformed or no lung can be found.

    Examples
    --------
    >>> labels = segment_lungs(hu, (2.5, 0.7, 0.7))  # doctest: +SKIP
    >>> right_ml = (labels == 1).sum() * 2.5 * 0.7 * 0.7 / 1000  # doctest: +SKIP
    """
    return segment(hu, spacing, coarse_mm=coarse_mm).labels
