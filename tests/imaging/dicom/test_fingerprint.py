"""The folder fingerprint (:mod:`lungtrial.imaging.dicom._fingerprint`): what reruns a scan. Hidden files in a scan
folder: ``test_hidden_files_are_not_part_of_a_scan`` in test_index.py (index and fingerprint together)."""

from __future__ import annotations

import os
import re
import shutil

from lungtrial.imaging.dicom import folder_fingerprint
from lungtrial.imaging.dicom._fingerprint import hidden


def test_fingerprint_follows_content_not_place(tmp_path):
    folder = tmp_path / "scan"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.dcm", "b.dcm", "sub/c.dcm"):
        (folder / name).write_bytes(b"x" * 100)
    first = folder_fingerprint(folder)
    assert re.fullmatch(r"[0-9a-f]{32}", first) and folder_fingerprint(tmp_path / "nowhere") is None
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)  # times kept: the same content
    assert folder_fingerprint(copy) == first
    seen = {first}
    st = (folder / "a.dcm").stat()
    os.utime(folder / "a.dcm", ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # rewritten in place, same size
    seen.add(folder_fingerprint(folder))
    (folder / "d.dcm").write_bytes(b"")  # added
    seen.add(folder_fingerprint(folder))
    (folder / "b.dcm").unlink()  # removed
    seen.add(folder_fingerprint(folder))
    (folder / "sub/c.dcm").rename(folder / "sub/e.dcm")  # renamed
    seen.add(folder_fingerprint(folder))
    assert len(seen) == 5
    for name in ("DOE_JOHN_19500101.dcm", "1.2.840.113619.2.55.3.604688119"):
        assert name not in folder_fingerprint(folder)


def test_hidden_names():
    assert hidden(".DS_Store") and hidden("._IM0001") and hidden(".snakemake_timestamp")
    assert not hidden("IM0001") and not hidden("a.dcm") and not hidden("1.2.840.10008")


def test_linked_folders_are_not_entered_and_broken_links_count(tmp_path):
    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"x" * 10)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.dcm").write_bytes(b"y" * 10)
    first = folder_fingerprint(folder)
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert folder_fingerprint(folder) == first  # a linked folder is neither entered nor a file
    (elsewhere / "c.dcm").write_bytes(b"z")
    assert folder_fingerprint(folder) == first
    (folder / "dangling.dcm").symlink_to(tmp_path / "missing.dcm")
    assert folder_fingerprint(folder) != first  # a broken link is a file that cannot be read: it counts


def test_not_a_folder(tmp_path):
    (tmp_path / "file.dcm").write_bytes(b"x")
    assert folder_fingerprint(tmp_path / "file.dcm") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert re.fullmatch(r"[0-9a-f]{32}", folder_fingerprint(empty))
