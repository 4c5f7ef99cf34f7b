"""Stored pixel values to HU: rescale or Modality LUT, and scanner padding (one transform per frame)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pydicom

from ._values import _float, _functional_group, _get

#: Stored values that end up below this many HU after the modality LUT are scanner padding, not tissue
#: (air is about -1000 HU; padding is typically -2000 or -3024 HU).
PADDING_BELOW_HU = -1500.0
#: Value written into padding voxels: air.
PADDING_FILL_HU = -1024

#: The pixel module and the rescale, LUT and padding elements: what reading a file's pixel data needs.
_PIXEL_TAGS = [
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
    "PixelData",
]


@dataclass
class _Transform:
    """Stored value -> HU of one frame: rescale (or the dataset holding a Modality LUT Sequence) and padding."""

    slope: float
    intercept: float
    lut: pydicom.Dataset | None
    padding: tuple[int, int] | None

    @classmethod
    def of(cls, slope, intercept, lut, padding) -> _Transform:
        """The transform with DICOM's defaults: a missing or zero slope is 1, a missing intercept 0."""
        return cls(1.0 if not slope else slope, intercept or 0.0, lut, padding)


def _padding(value, limit) -> tuple[int, int] | None:
    """Stored padding range (low, high) from PixelPaddingValue and PixelPaddingRangeLimit (None: no padding)."""
    if value is None:
        return None
    lo, hi = sorted((int(value), int(limit if limit is not None else value)))
    return lo, hi


def _transform(ds: pydicom.Dataset, frame: int | None) -> _Transform:
    item = None if frame is None else ds.PerFrameFunctionalGroupsSequence[frame - 1]
    slope = _float(_functional_group(ds, item, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _float(_functional_group(ds, item, "PixelValueTransformationSequence", "RescaleIntercept"))
    slope = _float(_get(ds, "RescaleSlope")) if slope is None else slope
    intercept = _float(_get(ds, "RescaleIntercept")) if intercept is None else intercept
    lut = ds if "ModalityLUTSequence" in ds and intercept is None else None
    pad_value = ds.get("PixelPaddingValue")
    padding = None if pad_value is None else _padding(pad_value, ds.get("PixelPaddingRangeLimit"))
    return _Transform.of(slope, intercept, lut, padding)


def _store_hu(tr: _Transform, stored: np.ndarray, out: np.ndarray, padding_below_hu: float) -> np.ndarray | None:
    """Write the HU of ``stored`` into the int16 view ``out`` (which may share ``stored``'s memory); return the
    padding mask (None if no padding).

    Padding: stored PixelPaddingValue (up to PixelPaddingRangeLimit) and values below ``padding_below_hu``
    after the modality LUT; they are set to ``PADDING_FILL_HU``.
    """
    from pydicom.pixels import apply_modality_lut

    pad = None
    if stored.itemsize == 1:
        stored = stored.astype(np.int16)
    if tr.padding is not None:
        lo, hi = tr.padding
        if tr.lut is not None or hi * tr.slope + tr.intercept >= padding_below_hu:  # else found as "low" below
            pad = stored == lo if lo == hi else (stored >= lo) & (stored <= hi)
    if tr.lut is not None:
        hu = apply_modality_lut(stored, tr.lut)
        low = hu < padding_below_hu
        np.copyto(out, np.clip(np.rint(hu), -32768, 32767), casting="unsafe")
    elif tr.slope == 1 and tr.intercept == int(tr.intercept) and stored.dtype.kind in "iu" and stored.itemsize == 2:
        offset = int(tr.intercept)
        threshold = math.ceil(padding_below_hu - offset)  # stored values below it are padding
        info = np.iinfo(stored.dtype)
        if threshold <= info.min:
            low = None
        else:
            low = stored < min(threshold, info.max) if threshold <= info.max else np.ones(stored.shape, bool)
        # 16-bit modular addition is exact wherever the result fits int16; results that would wrap below
        # -32768 are all under the padding threshold and overwritten below
        if info.max + offset <= 32767 or int(stored.max()) + offset <= 32767:
            np.add(stored.view(np.uint16), np.uint16(offset % 65536), out=out.view(np.uint16))
        else:
            np.copyto(out, np.clip(stored.astype(np.int32) + offset, -32768, 32767), casting="unsafe")
    else:
        hu = stored * tr.slope + tr.intercept
        low = hu < padding_below_hu
        np.copyto(out, np.clip(np.rint(hu), -32768, 32767), casting="unsafe")
    if low is not None:
        pad = low if pad is None else pad | low
    if pad is None or not pad.any():
        return None
    np.copyto(out, PADDING_FILL_HU, where=pad)
    return pad
