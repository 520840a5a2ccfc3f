"""The one git commit / dirty-tree check (downscalexr.provenance), on throw-away repositories."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from downscalexr.provenance import git_commit, git_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(root, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", "code.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return tmp_path


def test_clean_then_dirty_then_untracked(repo):
    head = _git(repo, "rev-parse", "HEAD")
    assert git_state(repo).commit == head and not git_state(repo).dirty
    assert git_commit(repo) == head
    (repo / "notes.txt").write_text("untracked files are not changes\n")
    assert not git_state(repo).dirty
    (repo / "code.py").write_text("x = 2\n")
    assert git_state(repo).dirty and git_commit(repo) == head + "+dirty"


def test_outside_a_checkout(tmp_path):
    assert git_state(tmp_path).commit is None
    assert git_commit(tmp_path) == "unknown"
