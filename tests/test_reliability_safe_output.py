"""Issue 13, items 1 (helpers), 8, 9 and 13 at the file level: durable atomic writes, permissions that follow
the umask, owned output directories, leftover temporaries, and a quarantine that never overwrites."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import pytest

from downscalexr import safe_output
from downscalexr.safe_output import (
    NotOurDirectoryError,
    claim_output_directory,
    current_umask,
    is_empty_or_ours,
    make_staging_directory,
    publish_directory,
    remove_leftover_staging,
    remove_leftover_temporaries,
    write_atomic,
    write_atomic_with,
)
from experiments.store import StudyPaths, finished_run_ids

MARKER = ".written-by-test"


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_the_process_umask():
    with umask(0o027):
        assert current_umask() == 0o027
    with umask(0o002):
        assert current_umask() == 0o002


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o007, 0o660, 0o770)])
def test_written_files_and_folders_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
    with umask(mask):
        write_atomic(tmp_path / "new" / "deeper" / "a.txt", "x")
        staging = make_staging_directory(tmp_path / "reports", "report")
    assert mode(tmp_path / "new" / "deeper" / "a.txt") == file_mode
    assert mode(tmp_path / "new") == mode(tmp_path / "new" / "deeper") == dir_mode
    assert mode(staging) == dir_mode  # tempfile.mkdtemp would give 0700


def test_atomic_write_syncs_the_file_and_its_directory(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        synced.append(kind)
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    write_atomic(tmp_path / "a.txt", "hello")
    assert synced == ["file", "dir"]  # the content first, then the rename's directory entry


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    write_atomic(target, "old")

    def half_then_disk_full(fh) -> None:
        fh.write(b"new but incomplete")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomic_with(target, half_then_disk_full)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_only_the_suites_temporaries_are_removed(tmp_path):
    ours = [".abc.parquet.0f3a9b2c.tmp", ".spec.yaml.k2j4h6g8.tmp"]  # this module's and tempfile's names
    theirs = ["notes.tmp", ".notes.tmp", "data.parquet", ".hidden", "x.parquet.tmp"]
    for name in ours + theirs:
        (tmp_path / name).write_text("x")
    (tmp_path / ".dir.0f3a9b2c.tmp").mkdir()  # a folder: never removed by this helper
    assert remove_leftover_temporaries([tmp_path, tmp_path / "missing"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*theirs, ".dir.0f3a9b2c.tmp"])


def test_output_directory_of_others_is_refused_and_left_untouched(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    before = {p.name: p.read_text() for p in thesis.iterdir()}
    with pytest.raises(NotOurDirectoryError, match="not written by"):
        claim_output_directory(thesis, MARKER, "the test")
    staging = make_staging_directory(tmp_path, "thesis")
    (staging / "report.md").write_text("new report")
    with pytest.raises(NotOurDirectoryError, match=str(thesis)):
        publish_directory(staging, thesis, MARKER, "the test")
    assert {p.name: p.read_text() for p in thesis.iterdir()} == before
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    with pytest.raises(NotOurDirectoryError, match="not a directory"):
        claim_output_directory(a_file, MARKER, "the test")


def test_empty_or_marked_directories_are_ours(tmp_path):
    assert is_empty_or_ours(tmp_path / "absent", MARKER)
    claim_output_directory(tmp_path / "out", MARKER, "the test")
    assert (tmp_path / "out" / MARKER).is_file()
    (tmp_path / "out" / "report.md").write_text("old")
    assert is_empty_or_ours(tmp_path / "out", MARKER)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "move-aside"])
def test_publish_replaces_our_own_directory_completely(tmp_path, monkeypatch, exchange):
    real, swapped = safe_output._exchange, []

    def spy(a, b):
        if exchange:
            swapped.append(real(a, b))
            return swapped[-1]
        return False

    monkeypatch.setattr(safe_output, "_exchange", spy)
    target = tmp_path / "report"
    for text in ("first", "second"):
        staging = make_staging_directory(tmp_path, "report")
        (staging / "report.md").write_text(text)
        (staging / text).write_text("only in this version")
        publish_directory(staging, target, MARKER, "the test")
        assert (target / "report.md").read_text() == text
    assert sorted(p.name for p in target.iterdir()) == sorted([MARKER, "report.md", "second"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging or old copy left
    if exchange and os.uname().sysname == "Linux":
        assert swapped == [True]  # the second publish swapped atomically: never a moment without a report


def test_a_second_quarantine_of_a_cell_keeps_the_first_copy_and_note(tmp_path):
    paths = StudyPaths(tmp_path / "study")
    paths.prepare()
    bad = paths.cell_file("runs", "abc")
    for content in (b"first garbage", b"second garbage"):
        bad.write_bytes(content)
        with pytest.warns(UserWarning, match="abc.parquet"):
            assert finished_run_ids(paths) == set()
    folder = paths.quarantine / "runs"
    assert (folder / "abc.parquet").read_bytes() == b"first garbage"
    assert (folder / "abc.1.parquet").read_bytes() == b"second garbage"
    assert (folder / "abc.why.txt").read_text().strip() and (folder / "abc.1.why.txt").read_text().strip()


def test_a_check_without_quarantine_moves_nothing(tmp_path):
    paths = StudyPaths(tmp_path / "study")
    paths.prepare()
    paths.cell_file("runs", "abc").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="left in place"):
        assert finished_run_ids(paths, quarantine=False) == set()
    assert paths.cell_file("runs", "abc").exists() and not paths.quarantine.exists()


def test_leftover_staging_folders_of_one_name_are_removed_and_nothing_else(tmp_path):
    ours = [make_staging_directory(tmp_path, "report") for _ in range(2)]
    ours.append(make_staging_directory(tmp_path, "report.old"))
    (ours[0] / "report.md").write_text("half written")
    others = [tmp_path / "report", tmp_path / ".other.0f3a9b2c.tmp", tmp_path / ".report.notes"]
    for path in others:
        path.mkdir()
    (tmp_path / ".report.1a2b3c4d.tmp.txt").write_text("a file")
    assert remove_leftover_staging(tmp_path, "report") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(p.name for p in others), ".report.1a2b3c4d.tmp.txt"]
    )
