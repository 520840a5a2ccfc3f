"""Which code produced a result: the git commit of this checkout and whether it has uncommitted changes.

One check for the whole project: the grid records it beside every study (``environment.json``), and the
report names the commit of the analysis code in its provenance section.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class GitState:
    """The commit of a checkout (None outside a git checkout) and whether tracked files are modified."""

    commit: str | None
    dirty: bool


def _git(root: Path, *args: str) -> str | None:
    """``git args`` in ``root``; its stripped output, or None when git is missing or fails."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(root: str | Path = REPO_ROOT) -> GitState:
    """The commit checked out in ``root`` (default: this package's checkout) and whether it is dirty.

    Untracked files do not count as changes; modified or staged tracked files do.

    Examples
    --------
    >>> git_state("/").commit is None or isinstance(git_state("/").commit, str)
    True
    """
    commit = _git(Path(root), "rev-parse", "HEAD")
    if commit is None:
        return GitState(None, False)
    status = _git(Path(root), "status", "--porcelain", "--untracked-files=no")
    return GitState(commit, bool(status))


def git_commit(root: str | Path = REPO_ROOT) -> str:
    """The commit of the code that runs, with ``+dirty`` when the tree has uncommitted changes.

    ``"unknown"`` outside a git checkout (e.g. an installed wheel) or when git is missing.
    """
    state = git_state(root)
    if state.commit is None:
        return "unknown"
    return state.commit + ("+dirty" if state.dirty else "")
