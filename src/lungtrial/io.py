"""Writing outputs atomically and byte for byte the same: files, tables (CSV, Parquet), JSON and figures.

Every output of the library and the workflow goes through here. A file is written under a hidden temporary name
beside its final one and moved into place only when complete (:func:`atomic_path`), so an interrupted run never
leaves a half-written file under a final name; the hidden names (``.<name>.<random>.tmp<suffixes>``) match
:data:`TEMPORARY`, so whoever cleans up after a killed job can recognise them. The same content gives the same
bytes in every run: no time stamp, file name or random id goes into a file.

Light imports only (pandas and matplotlib are imported by the functions that need them): workflow scripts and
``import lungtrial`` load this module.

Examples
--------
>>> import pandas as pd
>>> from lungtrial import io
>>> io.write_csv(pd.DataFrame({"scan_id": ["P01-D00"], "pct_opacity": [12.5]}), "out/metrics.csv")
>>> io.write_json({"scan_id": "P01-D00", "status": "ok"}, "out/series.json")
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: Names of the temporary files :func:`atomic_path` writes beside an output (``.metrics.csv.k2j1x.tmp.csv``).
TEMPORARY = re.compile(r"^\..+\.tmp(\.[^/]*)?$")

SVG_HASH_SALT = "lungtrial"
"""Salt of the SVG element ids (matplotlib ``svg.hashsalt``): fixed, so that the ids do not change between runs."""

# The process's umask, read once at import: os.umask can only be read by setting it, which is not thread-safe
# (writers run on several threads at once).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary file is created empty in the same folder (so the final move is an atomic rename), with the
    permissions of an ordinary new file (the umask applied), and removed if the block fails. Parent folders are
    created.

    Parameters
    ----------
    path : the final file.

    Yields
    ------
    pathlib.Path
        Where to write; its name ends with ``path``'s suffixes, so writers that choose the format by the file's
        extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    tmp.chmod(0o666 & ~_UMASK)  # mkstemp makes owner-only files; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_with(write: Callable[[Path], object], path: str | os.PathLike) -> Path:
    """Call ``write(tmp)`` on a temporary path and move the result to ``path`` atomically (:func:`atomic_path`);
    returns ``path``. For writers that take a file name (an image library's ``save``, ``np.savez``)."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` (e.g. an encoded PNG) to ``path`` atomically; returns ``path``."""
    return write_with(lambda tmp: tmp.write_bytes(data), path)


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_with(lambda tmp: tmp.write_text(text, encoding="utf-8"), path)


def write_json(
    content: Any,
    path: str | os.PathLike,
    *,
    indent: int | None = 1,
    default: Callable[[Any], Any] | None = None,
    end: str = "",
) -> Path:
    """Write ``content`` as JSON to ``path`` atomically; returns ``path``.

    Parameters
    ----------
    content : anything :func:`json.dumps` takes; keys keep their order.
    path : the JSON file.
    indent : spaces per level (``None``: one line).
    default : converter of values JSON has no type for (e.g. ``float`` for numpy numbers).
    end : text after the document (``"\\n"`` for a final newline).
    """
    return write_text(json.dumps(content, indent=indent, default=default) + end, path)


def write_csv(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``table`` as CSV without its index, atomically; returns ``path``.

    Values are written as pandas writes them (floats by their shortest round-trip representation, missing
    values as empty cells); see :func:`write_table` for date columns.
    """
    return write_with(lambda tmp: table.to_csv(tmp, index=False), path)


def write_table(table: pd.DataFrame, *paths: str | os.PathLike) -> None:
    """Write a table to each path, as CSV (``.csv``) or Parquet (``.parquet``, pyarrow), atomically.

    In a CSV, date columns are written ``YYYY-MM-DD`` (``YYYY-MM-DD HH:MM`` when any value has a time of day)
    and missing values as empty cells; Parquet keeps the column types.

    Raises
    ------
    ValueError
        If a path ends in neither ``.csv`` nor ``.parquet``.
    """
    import pandas as pd

    text = table.copy()
    for col in text.columns:
        if pd.api.types.is_datetime64_any_dtype(text[col]):
            times = text[col].dropna()
            fmt = "%Y-%m-%d" if (times == times.dt.normalize()).all() else "%Y-%m-%d %H:%M"
            text[col] = text[col].dt.strftime(fmt)
    for path in map(Path, paths):
        if path.suffix not in (".csv", ".parquet"):
            raise ValueError(f"{path}: expected a .csv or .parquet file name")
        if path.suffix == ".csv":
            write_csv(text, path)
        else:
            write_with(lambda tmp: table.to_parquet(tmp, index=False, engine="pyarrow"), path)


def write_figure(
    fig: Figure,
    png_path: str | os.PathLike,
    svg_path: str | os.PathLike | None = None,
    dpi: int = 150,
    *,
    bbox_inches: str | None = "tight",
) -> None:
    """Write a matplotlib figure as PNG (``dpi`` dots per inch) and optionally SVG, each atomically.

    The same figure gives the same bytes in every run: the SVG carries no date and its element ids come from a
    fixed salt (:data:`SVG_HASH_SALT`) instead of a random one (set for this call only); the PNG's only metadata
    is the matplotlib version.

    Parameters
    ----------
    fig : the figure (pyplot is not needed).
    png_path : the PNG file.
    svg_path : the SVG file, or None for none.
    dpi : resolution of the PNG, dots per inch.
    bbox_inches : ``"tight"`` crops the figure to what is drawn; None keeps its size.
    """
    from matplotlib import rc_context

    write_with(lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches=bbox_inches), png_path)
    if svg_path is not None:
        with rc_context({"svg.hashsalt": SVG_HASH_SALT}):
            write_with(
                lambda tmp: fig.savefig(tmp, format="svg", bbox_inches=bbox_inches, metadata={"Date": None}),
                svg_path,
            )


def _rot32(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def _lookup3(data: bytes) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` with initial value 0: the checksum HDF5 puts on its metadata."""
    mask = 0xFFFFFFFF
    a = b = c = (0xDEADBEEF + len(data)) & mask
    n, i = len(data), 0
    while n > 12:
        x, y, z = struct.unpack_from("<III", data, i)
        a, b, c = (a + x) & mask, (b + y) & mask, (c + z) & mask
        for r1, r2, r3 in ((4, 6, 8), (16, 19, 4)):  # lookup3's mix()
            a = ((a - c) & mask) ^ _rot32(c, r1)
            c = (c + b) & mask
            b = ((b - a) & mask) ^ _rot32(a, r2)
            a = (a + c) & mask
            c = ((c - b) & mask) ^ _rot32(b, r3)
            b = (b + a) & mask
        i, n = i + 12, n - 12
    if n == 0:
        return c
    x, y, z = struct.unpack("<III", data[i:] + bytes(12 - n))
    a, b, c = (a + x) & mask, (b + y) & mask, (c + z) & mask
    c = (c ^ b) - _rot32(b, 14) & mask
    a = (a ^ c) - _rot32(c, 11) & mask
    b = (b ^ a) - _rot32(a, 25) & mask
    c = (c ^ b) - _rot32(b, 16) & mask
    a = (a ^ c) - _rot32(c, 4) & mask
    b = (b ^ a) - _rot32(a, 14) & mask
    c = (c ^ b) - _rot32(b, 24) & mask
    return c


def clear_hdf5_times(path: str | os.PathLike) -> int:
    """Zero the access, modification, change and birth times HDF5 stores in its version-2 object headers
    (``OHDR`` with flag bit 5) and fix each header's checksum, so that the same content gives the same bytes.

    Only a header whose checksum matches is changed (the bytes ``OHDR`` inside raw data are left alone). Returns the
    number of headers cleared.
    """
    data = bytearray(Path(path).read_bytes())
    cleared, pos = 0, data.find(b"OHDR")
    while pos >= 0:
        version, flags = (data[pos + 4], data[pos + 5]) if pos + 22 <= len(data) else (0, 0)
        if version == 2 and flags & 0x20:
            at = pos + 6 + 16 + (4 if flags & 0x10 else 0)
            width = 1 << (flags & 0x03)
            end = at + width + int.from_bytes(data[at : at + width], "little")  # the checksum follows chunk 0
            if end + 4 <= len(data) and struct.unpack_from("<I", data, end)[0] == _lookup3(bytes(data[pos:end])):
                data[pos + 6 : pos + 22] = bytes(16)
                struct.pack_into("<I", data, end, _lookup3(bytes(data[pos:end])))
                cleared += 1
        pos = data.find(b"OHDR", pos + 4)
    if cleared:
        Path(path).write_bytes(bytes(data))
    return cleared
