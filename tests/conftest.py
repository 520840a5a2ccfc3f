"""Shared fixtures: a tiny study written as YAML, the grid CLI run in-process or as a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def grid_command(*args: str) -> list[str]:
    """The grid CLI as a subprocess command line, run with this interpreter."""
    return [sys.executable, "-m", "experiments.grid", *args]


def grid_env() -> dict[str, str]:
    """Environment for a grid subprocess: the repository importable, one thread per process."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


@contextlib.contextmanager
def process_state_kept():
    """Undo what an in-process grid run changes in this process: environment variables, torch threads."""
    import torch

    env, threads = dict(os.environ), torch.get_num_threads()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(env)
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def kept_process_state():
    """The :func:`process_state_kept` context manager, for fixtures of any scope."""
    return process_state_kept


@pytest.fixture
def run_grid(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``experiments.grid.main(argv)`` in this process; return (exit code, stdout, stderr)."""
    from experiments.grid import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with process_state_kept():
            code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def start_grid() -> Callable[..., subprocess.Popen]:
    """Start the grid CLI as a subprocess (stdout/stderr to pipes); every one is killed at teardown."""
    procs: list[subprocess.Popen] = []

    def start(*argv: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            grid_command(*[str(a) for a in argv]),
            cwd=REPO,
            env=grid_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def study_yaml(tmp_path) -> Callable[..., Path]:
    """Write a copy of the built-in ``smoke`` study with nested keys replaced; return its path.

    ``study_yaml(name="slow", train={"epochs": 8})`` updates top-level keys, merging one level of
    mappings (``train``, ``data``, ...) so unnamed options keep the smoke study's values.
    """
    from experiments.spec import STUDIES_DIR

    base = yaml.safe_load((STUDIES_DIR / "smoke.yaml").read_text())

    def write(name: str = "tiny", **changes) -> Path:
        raw = dict(base, name=name)
        for key, value in changes.items():
            raw[key] = dict(raw.get(key) or {}, **value) if isinstance(value, dict) else value
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write
