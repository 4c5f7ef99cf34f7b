"""Raw-byte decoding of plain header values, beside pydicom's conversion: a speed path of :func:`._values._get`.

Headers are indexed for every file of a scan. Elements that pydicom has not converted yet and whose value
representation is plain ASCII (CS, DS, IS, UI, ...) or a binary integer (US, SS, UL, SL) are decoded here straight
from their bytes: text (backslash-separated values, padding stripped) or an int (a list when multi-valued), as the
``_values`` helpers read them. Everything else (other VRs, ambiguous VRs such as "US or SS", deferred values) is
left to pydicom.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import RawDataElement

# benchmarks/bench_scan.py pipeline --without rawheader (300 x 512 x 512, best of 5): reading 0.31 -> 0.40 s (+8 % of
# the 1.16 s scan; the scan's median 1.17 -> 1.29 s)
ENABLED = True  # False: every value goes through pydicom (for measuring what this path buys)

#: Value representations limited to the default (ASCII) repertoire: their raw bytes are the text.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
#: Binary integer value representations -> struct format of one value.
_INT_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}

#: What :func:`decode` returns for an element it leaves to pydicom.
UNDECODED = object()


def decode(elem, dict_vr: str):
    """The value of a raw (unconverted) data element decoded from its bytes; ``UNDECODED`` when ``elem`` is not
    one this path reads (or the path is off).

    Parameters
    ----------
    elem : pydicom data element
        As ``Dataset.get_item(tag, keep_deferred=True)`` returns it.
    dict_vr : str
        The value representation of the element's tag in the DICOM dictionary (used when ``elem`` has none:
        implicit VR).
    """
    if not ENABLED or not isinstance(elem, RawDataElement) or elem.value is None:
        return UNDECODED
    vr = elem.VR or dict_vr
    if vr in _ASCII_VRS:
        return elem.value.decode("ascii", "replace").strip(" \0") or None
    fmt = _INT_VRS.get(vr)
    if fmt is not None and len(elem.value) % struct.calcsize(fmt) == 0:
        values = struct.unpack(
            ("<" if elem.is_little_endian else ">") + fmt * (len(elem.value) // struct.calcsize(fmt)), elem.value
        )
        return None if not values else values[0] if len(values) == 1 else list(values)
    return UNDECODED
