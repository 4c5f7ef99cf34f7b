"""The folder fingerprint: what reruns a scan (:func:`folder_fingerprint`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def hidden(name: str) -> bool:
    """Whether a file or folder name is hidden (starts with ``.``) and so not part of a scan: a file manager's or a
    tool's bookkeeping (``.DS_Store``, macOS ``._`` copies, Snakemake's ``.snakemake_timestamp`` in a folder it
    wrote), never a scanner's image."""
    return name.startswith(".")


def folder_fingerprint(folder: str | os.PathLike) -> str | None:
    """A short hash of what a scan folder holds, without reading any file: relative path, size (bytes) and
    modification time (ns) of every file below it but hidden ones (as :func:`index_folder` sees them: a
    ``.DS_Store`` written by a file manager reruns nothing).

    A file added, removed, renamed or rewritten (which updates its modification time) changes the fingerprint;
    copying the folder with its times kept (``cp -a``, ``rsync -a``) or moving it does not. One ``stat`` per
    file: 2-3 ms per 500 files with the file system's metadata cached (``benchmarks/bench_workflow.py fingerprint``).

    Parameters
    ----------
    folder : path
        Scan folder.

    Returns
    -------
    str or None
        32 hexadecimal digits (SHA-256, truncated); None when ``folder`` is not a folder. Names enter only
        through the hash.
    """
    root = Path(folder)
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    entries = []
    stack = [(os.fspath(root), "")]
    while stack:
        path, prefix = stack.pop()
        try:
            scan = os.scandir(path)
        except OSError:
            continue
        with scan:
            for entry in scan:
                if hidden(entry.name):
                    continue
                rel = prefix + entry.name
                try:
                    if entry.is_dir():  # as os.walk: linked folders are not entered, and are not files
                        if not entry.is_symlink():
                            stack.append((entry.path, rel + "/"))
                        continue
                    st = entry.stat()
                    entries.append((rel, st.st_size, st.st_mtime_ns))
                except OSError:  # a broken link, or a file removed meanwhile
                    entries.append((rel, -1, -1))
    for rel, size, mtime in sorted(entries):
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]
