"""Issue 13, items 4 and 10 with real processes and real signals: a grid subprocess (2 workers) is sent
SIGINT, SIGTERM or SIGKILL, or loses a worker; stored cells survive, no process outlives the runner, and
the exit code and the one-line message say what happened. ``tests/kill_loop.py`` repeats these at random
moments (30 kills and more); here each kind runs once."""

from __future__ import annotations

import os
import re
import signal

import pytest
from kill_loop import descendants, living, start_grid, stored, wait_until, workers

from experiments.store import StudyPaths, read_study, study_lock

pytestmark = pytest.mark.slow
ONE_SEED = ("--seed-list", "0", "--fractions", "1.0")  # three cells


@pytest.fixture
def grid(tmp_path):
    """Start grids in their own sessions; kill whatever is left of them at teardown."""
    procs = []

    def start(*extra: str):
        proc = start_grid(tmp_path / "study", *extra)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def wait_mid_grid(proc, out, cells: int) -> None:
    """Until ``cells`` cells are stored and both workers run (each holds a cell from its start); fail
    if the grid ends first."""
    assert wait_until(lambda: len(stored(out)) >= cells or proc.poll() is not None, timeout=300)
    assert wait_until(lambda: len(workers(proc.pid)) == 2 or proc.poll() is not None, timeout=60)
    assert proc.poll() is None, "the grid ended before it could be interrupted"


def assert_no_orphans(family) -> None:
    assert family, "the runner had no worker processes to check"
    assert wait_until(lambda: not living(family), timeout=10, step=0.05), [p.pid for p in living(family)]


def test_ctrl_c_lets_running_cells_finish_then_exits_130_with_one_line(grid, tmp_path):
    out = tmp_path / "study"
    proc = grid()
    wait_mid_grid(proc, out, cells=1)
    before = stored(out)
    family = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    after = stored(out)
    assert set(before) <= set(after)
    # both workers were mid-cell: the runner waited for them instead of dropping their work
    assert len(after) >= len(before) + 1
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"experiments.grid: interrupted \(SIGINT\): {len(after)} of 12 cells stored; .*resume", last
    )
    assert_no_orphans(family)
    with study_lock(StudyPaths(out), {"pid": os.getpid()}):
        pass  # released


def test_sigterm_cancels_running_cells_and_exits_143(grid, tmp_path):
    out = tmp_path / "study"
    proc = grid()
    wait_mid_grid(proc, out, cells=0)
    before = stored(out)
    family = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)  # the runner only, as a scheduler would
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "interrupted (SIGTERM)" in err and "rerun the same command to resume" in err
    assert set(before) <= set(stored(out))
    assert_no_orphans(family)
    hidden = [p.name for p in (out / "runs").iterdir() if not p.name.endswith(".parquet")]
    # a cancelled write leaves only a hidden temporary (beside the table's _common_metadata)
    assert all(name.startswith(".") for name in hidden if name != "_common_metadata")


def test_sigkill_of_the_runner_takes_its_workers_with_it(grid, tmp_path):
    out = tmp_path / "study"
    proc = grid()
    wait_mid_grid(proc, out, cells=0)
    family = descendants(proc.pid)
    assert len(family) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_no_orphans(family)  # before the fix, loky workers lived ~335 s and kept writing cells
    with study_lock(StudyPaths(out), {"pid": os.getpid()}):
        pass  # a killed runner leaves no lock


def test_a_killed_worker_fails_its_own_cell_only_and_the_grid_goes_on(grid, run_grid, tmp_path):
    out = tmp_path / "study"
    proc = grid(*ONE_SEED)
    assert wait_until(lambda: workers(proc.pid) or proc.poll() is not None, timeout=120)
    victim = workers(proc.pid)[0]  # each worker is handed its first cell as it starts
    victim.kill()  # as the out-of-memory killer would
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "1 cell(s) lost their worker process" in err and "a rerun retries them" in err
    runs = read_study(out)["runs"]
    assert len(runs) == 3
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 1 and failed["error"].str.contains("killed by signal 9").all()
    assert (runs.drop(index=failed.index)["status"] == "ok").all()
    code, stdout, _ = run_grid("--study", "smoke", "--epochs", "10", "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 0 and "1 cell(s) run" in stdout  # the plain rerun retried the lost cell only
    assert (read_study(out)["runs"]["status"] == "ok").all()
