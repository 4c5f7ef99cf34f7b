"""Pixel data read at the offset the header index recorded: a pixel-read path beside pydicom's decoders.

The header index records where the pixel data of a plain single-frame image start (:func:`pixel_offset`, the index's
``pixel_offset`` column): native (uncompressed) little-endian 16-bit grey-scale values with the stored bits at the
bottom of each word, rescale and padding values that convert, no Modality LUT Sequence, no functional groups.
``read_volume`` given that index reads such a file with one ``readinto`` at that offset (:func:`read_direct`),
straight into the volume where the in-plane layout allows, without parsing its header a second time; bits above
BitsStored are masked or sign-extended as pydicom's ``pixel_array`` does. A file whose size changed since it was
indexed, and every other file, is read through pydicom (``_volume._read_frames``). The volume is the same either way.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from ._pixels import _padding, _Transform, _transform
from ._values import _finite, _float, _get, _or

# benchmarks/bench_scan.py pipeline --without directread (300 x 512 x 512, best of 5): reading 0.31 -> 0.50 s, the
# scan 1.16 -> 1.33 s (+15 %)
ENABLED = True  # False: every file is read through pydicom (for measuring what this path buys)

_NATIVE_LITTLE_ENDIAN = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


def pixel_offset(ds: pydicom.Dataset, pixel) -> int | None:
    """File offset of the pixel data of a single-frame image whose stored values can be read straight from the
    file (see the module's docstring); None for anything else, or when the path is off."""
    if not ENABLED:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows, cols = int(_get(ds, "Rows")), int(_get(ds, "Columns"))
            bits_stored = int(_or(_get(ds, "BitsStored"), 16))
            direct = (
                str(ds.file_meta.get("TransferSyntaxUID", "")) in _NATIVE_LITTLE_ENDIAN
                and int(_get(ds, "NumberOfFrames") or 1) == 1
                and "PerFrameFunctionalGroupsSequence" not in ds
                and "SharedFunctionalGroupsSequence" not in ds
                and "ModalityLUTSequence" not in ds
                and int(_or(_get(ds, "BitsAllocated"), 0)) == 16
                and int(_or(_get(ds, "SamplesPerPixel"), 1)) == 1
                and 1 <= bits_stored <= 16
                and int(_or(_get(ds, "HighBit"), bits_stored - 1)) == bits_stored - 1
                and int(_or(_get(ds, "PixelRepresentation"), 0)) in (0, 1)
                and pixel.length == rows * cols * 2
                and pixel.value_tell is not None
            )
            if direct:
                _transform(ds, None)  # the rescale and padding values convert
    except Exception:  # noqa: BLE001 - anything odd is left to the general reader
        return None
    return int(pixel.value_tell) if direct else None


def direct_reads(index: pd.DataFrame | None, names: Sequence[str]) -> dict[str, tuple]:
    """Per file of ``names`` that the index found directly readable (``pixel_offset``): its size in bytes, pixel
    data offset, (rows, columns), stored dtype, BitsStored and transform."""
    if not ENABLED or index is None or "pixel_offset" not in index.columns:
        return {}
    rows = index[index["path"].isin(names) & index["frame"].isna() & index["pixel_offset"].notna()]
    out = {}
    for r in rows.itertuples(index=False):
        padding = None
        if r.padding_value is not None and not pd.isna(r.padding_value):
            limit = None if r.padding_limit is None or pd.isna(r.padding_limit) else r.padding_limit
            padding = _padding(r.padding_value, limit)
        signed = _finite(r.pixel_representation, 0) == 1
        out[r.path] = (
            int(r.file_size),
            int(r.pixel_offset),
            (int(r.rows), int(r.columns)),
            np.dtype("<i2" if signed else "<u2"),
            int(_finite(r.bits_stored, 16)),
            _Transform.of(_float(r.rescale_slope), _float(r.rescale_intercept), None, padding),
        )
    return out


def read_direct(path: Path, size: int, offset: int, stored: np.ndarray, bits_stored: int) -> bool:
    """Read one frame of stored values at ``offset`` of ``path`` into ``stored`` (which has the file's dtype);
    False (nothing trusted) if the file is no longer the one indexed (``size`` bytes) or ends early."""
    try:
        with open(path, "rb", buffering=0) as fp:
            if os.fstat(fp.fileno()).st_size != size:
                return False
            fp.seek(offset)
            if fp.readinto(memoryview(stored).cast("B")) != stored.nbytes:
                return False
    except OSError:
        return False
    _mask_bits(stored, bits_stored)
    return True


def _mask_bits(stored: np.ndarray, bits_stored: int) -> None:
    """Sign-extend (signed) or mask (unsigned) 16-bit stored values above BitsStored, in place."""
    if bits_stored < 16:
        shift = 16 - bits_stored
        if stored.dtype.kind == "i":  # sign-extend from bit bits_stored - 1
            stored <<= shift
            stored >>= shift
        else:  # bits above HighBit are not pixel data
            stored &= (1 << bits_stored) - 1
