"""What it costs to notice that a scan folder's content changed, at every Snakemake invocation.

    python benchmarks/bench_fingerprint.py                      # 1,000 scans x 500 files
    python benchmarks/bench_fingerprint.py --scans 200 --files 300

The workflow passes ``lungtrial.imaging.dicom.folder_fingerprint`` of each scan's folder (a hash of the files' relative
paths, sizes and modification times) as a parameter of the scan's job, so Snakemake computes it for every scan
each time it plans (run or dry run) and reruns a scan whose value changed. Prints, with the file system's metadata
in memory (a second pass; a first pass over a cold network file system costs more, once):

- the fingerprint of one folder of ``--files`` files (median of repeats);
- the fingerprints of ``--scans`` such folders, as Snakemake computes them when it plans;
- against that, the alternative of hashing the files' bytes: one folder of ``--files`` CT-sized files
  (``--file-kb``, 512 x 512 x 2 bytes by default), read and hashed with SHA-256 (page cache warm), and what that
  would make of ``--scans`` folders.

The folders hold empty files for the ``--scans`` measurement (``stat`` does not depend on a file's size) and
real-sized random files for the content hash.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from lungtrial.imaging.dicom import folder_fingerprint


def make_folders(root: Path, scans: int, files: int, size: int = 0) -> list[Path]:
    """``scans`` folders of ``files`` files of ``size`` random bytes each, named as PACS exports often are."""
    folders = []
    for s in range(scans):
        folder = root / f"S{s:05d}"
        folder.mkdir(parents=True)
        for f in range(files):
            with open(folder / f"IM{f:05d}.dcm", "wb") as out:
                if size:
                    out.write(os.urandom(size))
        folders.append(folder)
    return folders


def content_hash(folder: Path) -> str:
    """SHA-256 of every file's bytes, in name order (the alternative that reads the pixels)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fp:
                digest.update(hashlib.file_digest(fp, "sha256").digest())
    return digest.hexdigest()


def median_time(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--files", type=int, default=500, help="files per scan folder")
    parser.add_argument("--file-kb", type=int, default=512, help="size of each file for the content hash (KiB)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lungtrial-fingerprint.") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        folders = make_folders(tmp / "empty", args.scans, args.files)
        print(f"{args.scans} folders x {args.files} files written in {time.perf_counter() - start:.1f} s")

        one = median_time(lambda: folder_fingerprint(folders[0]), args.repeat * 4)
        print(f"fingerprint of one folder of {args.files} files: {one * 1e3:.2f} ms")
        for label in ("first pass", "second pass"):
            all_folders = median_time(lambda: [folder_fingerprint(f) for f in folders], 1)
            print(f"fingerprints of {args.scans} folders ({label}): {all_folders:.2f} s "
                  f"({all_folders / args.scans * 1e3:.2f} ms per folder)")  # fmt: skip

        (real,) = make_folders(tmp / "real", 1, args.files, args.file_kb * 1024)
        megabytes = args.files * args.file_kb / 1024
        content_hash(real)  # into the page cache
        hashed = median_time(lambda: content_hash(real), args.repeat)
        print(f"content hash of one folder ({args.files} files, {megabytes:.0f} MB, page cache warm): {hashed:.2f} s "
              f"({megabytes / hashed:.0f} MB/s); for {args.scans} folders: ~{hashed * args.scans / 60:.0f} min, "
              f"{megabytes * args.scans / 1024:.0f} GB read at every run")  # fmt: skip
        fingerprinted = median_time(lambda: folder_fingerprint(real), args.repeat * 4)
        print(f"fingerprint of the same folder: {fingerprinted * 1e3:.2f} ms ({hashed / fingerprinted:.0f} x less)")


if __name__ == "__main__":
    main()
