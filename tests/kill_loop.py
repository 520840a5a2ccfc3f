"""Kill a running grid again and again at random moments; count lost cells and orphan processes.

    PYTHONPATH=$PWD .venv/bin/python tests/kill_loop.py --kills 30 --seed 0
    PYTHONPATH=$PWD .venv/bin/python tests/kill_loop.py --kills 5 --out /tmp/loop
    PYTHONPATH=$PWD .venv/bin/python tests/kill_loop.py --kills 20 --ensemble   # seed groups as jobs

Each round starts ``python -m experiments.grid`` on the smoke study (``--epochs 10``, 2 workers) in its
own session, waits a random time, and sends one of: SIGINT to the process group (a terminal's Ctrl-C),
SIGINT twice, SIGTERM to the runner, SIGKILL to the runner, SIGKILL to one worker (the out-of-memory
killer). It then checks that

- every cell stored as a result (``ok``/``diverged``) before the kill still is (``cells lost``: 0);
- every process the runner had started is gone within 10 s (``orphans`` must be 0);
- the exit code is the documented one (130, 130, 143, killed, or 3 / finishing) and stderr has no
  traceback;
- no half-written file is visible to readers (only hidden temporaries, removed by the next run).

A final plain run completes the study (retrying the failed cells of lost workers) and checks that every
cell is stored exactly once and ``ok``. Not collected by pytest (no ``test_`` prefix); the regular
suite runs one kill of each kind (``tests/test_reliability_signals.py``) with the helpers below.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
GRID = ("--study", "smoke", "--epochs", "10", "--n-jobs", "2", "--quiet")
N_CELLS = 12
KINDS = ("sigint-group", "sigint-twice", "sigterm", "sigkill", "sigkill-worker")


def start_grid(out: Path, *extra: str) -> subprocess.Popen:
    """The grid CLI in a new session (its pid is its process group), importing this checkout."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.grid", *GRID, "--out", str(out), *extra],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below ``pid`` (workers, resource tracker)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def living(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The processes still running (a zombie has ended: only its exit status is left to collect)."""
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def workers(pid: int) -> list[psutil.Process]:
    """The runner's worker processes."""
    found = []
    for p in descendants(pid):
        with_cmd = " ".join(_cmdline(p))
        if "experiments._pool" in with_cmd:
            found.append(p)
    return found


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def stored(out: Path) -> dict[str, str]:
    """Status by run id of the cells stored complete and valid (read only: nothing is moved)."""
    import warnings

    from experiments.store import StudyPaths, stored_runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = stored_runs(StudyPaths(out), quarantine=False)
    return dict(zip(runs["run_id"], runs["status"], strict=True))


def lost_results(before: dict[str, str], after: dict[str, str]) -> int:
    """Cells stored as results (``ok``, ``diverged``) before that are not stored so after.

    A ``failed`` cell is retried by a plain run, which replaces it; between its new files and its new
    ``runs`` row it is unfinished, by design.
    """
    return sum(status != "failed" and after.get(rid) != status for rid, status in before.items())


def visible_partial_files(out: Path) -> list[str]:
    """Files a Parquet reader would see that are not complete cell files (must be none)."""
    import pyarrow.parquet as pq

    bad = []
    for table in ("runs", "epochs", "predictions", "latency", "kernels"):
        folder = out / table
        for path in folder.glob("*.parquet") if folder.is_dir() else ():
            try:
                pq.read_metadata(path)
            except Exception:
                bad.append(str(path))
    return bad


def kill_once(out: Path, kind: str, delay: float) -> dict:
    """One round: start, wait ``delay`` seconds after the first worker exists, signal, check."""
    before = stored(out)
    proc = start_grid(out)
    wait_until(lambda: workers(proc.pid) or proc.poll() is not None, timeout=120)
    time.sleep(delay)
    family = descendants(proc.pid)
    if proc.poll() is not None:
        _, err = proc.communicate()
        return {
            "kind": kind,
            "sent": False,
            "code": proc.returncode,
            "lost": lost_results(before, stored(out)),
        } | {
            "orphans": 0,
            "traceback": "Traceback" in err,
            "partial": visible_partial_files(out),
        }
    _send(proc, kind)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        err += "\n(timed out)"
    wait_until(lambda: not living(family), timeout=10, step=0.05)
    orphans = living(family)
    for p in orphans:
        p.kill()
    return {
        "kind": kind,
        "sent": True,
        "code": proc.returncode,
        "lost": lost_results(before, stored(out)),
        "orphans": len(orphans),
        "traceback": "Traceback" in err,
        "partial": visible_partial_files(out),
        "stderr": err.strip().splitlines()[-1:] if err.strip() else [],
    }


def _send(proc: subprocess.Popen, kind: str) -> None:
    if kind == "sigint-group":
        os.killpg(proc.pid, signal.SIGINT)
    elif kind == "sigint-twice":
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
    elif kind == "sigterm":
        proc.send_signal(signal.SIGTERM)
    elif kind == "sigkill":
        proc.send_signal(signal.SIGKILL)
    elif kind == "sigkill-worker":
        busy = workers(proc.pid)
        if busy:
            busy[0].kill()


EXPECTED = {
    "sigint-group": {130},
    "sigint-twice": {130},
    "sigterm": {143},
    "sigkill": {-9},
    "sigkill-worker": {3},  # the grid finishes the other cells, then reports the lost one
}
# A signal that lands after the grid has finished, while the interpreter tears down (its handlers are
# back to the defaults), ends the process by that signal: Popen sees -2 / -15 where a shell shows 130 /
# 143 for both. Accepted only when every cell is stored, i.e. the grid had finished.
TEARDOWN = {"sigint-group": {-2}, "sigint-twice": {-2}, "sigterm": {-15}}


def finish_and_check(out: Path) -> bool:
    """Run the study to its end with a plain rerun; whether every cell is then stored once and ``ok``."""
    from experiments.store import read_study

    final = start_grid(out)
    final.communicate(timeout=900)
    runs = read_study(out)["runs"]
    complete = final.returncode == 0 and len(runs) == N_CELLS and runs["run_id"].is_unique
    complete = complete and bool((runs["status"] == "ok").all())
    print(f"    {out.name}: final plain run exit {final.returncode}, {len(runs)} cells, complete: {complete}")
    return complete


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30, help="rounds of start + kill")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kinds and the moments")
    parser.add_argument("--max-delay", type=float, default=12.0, help="latest kill, s after workers start")
    parser.add_argument("--out", type=Path, default=None, help="parent of the study directories")
    parser.add_argument("--ensemble", action="store_true", help="the grid with --ensemble (seed groups)")
    args = parser.parse_args()
    if args.ensemble:
        global GRID
        GRID = (*GRID, "--ensemble")
    rng = random.Random(args.seed)
    base = args.out or Path(tempfile.mkdtemp(prefix="kill-loop-"))
    studies, rounds, finals = 0, [], []
    out = base / f"study-{studies}"
    for i in range(args.kills):
        if len(stored(out)) == N_CELLS:  # this directory is done: check it, then start another
            finals.append(finish_and_check(out))
            studies += 1
            out = base / f"study-{studies}"
        kind = KINDS[i % len(KINDS)] if i < len(KINDS) else rng.choice(KINDS)
        delay = rng.uniform(0.0, args.max_delay)
        r = kill_once(out, kind, delay)
        ok_code = (
            not r["sent"]
            or r["code"] in EXPECTED[kind]
            or (kind == "sigkill-worker" and r["code"] == 0)
            or (r["code"] in TEARDOWN.get(kind, ()) and len(stored(out)) == N_CELLS)
        )
        r["ok"] = ok_code and r["lost"] == 0 and r["orphans"] == 0 and not r["traceback"] and not r["partial"]
        rounds.append(r)
        print(
            f"{i + 1:>3} {kind:<15} at {delay:5.2f} s: exit {r['code']}, "
            f"stored {len(stored(out))}/{N_CELLS}, "
            f"lost {r['lost']}, orphans {r['orphans']}{'' if r['ok'] else '  <-- FAILED ' + str(r)}",
            flush=True,
        )
    finals.append(finish_and_check(out))
    sent = Counter(r["kind"] for r in rounds if r["sent"])
    print(f"\nkills sent: {sum(sent.values())} of {len(rounds)} rounds ({dict(sent)})")
    print(f"cells lost: {sum(r['lost'] for r in rounds)}; orphans left: {sum(r['orphans'] for r in rounds)}")
    print(f"rounds with a wrong exit code, a traceback or a partial file: {sum(not r['ok'] for r in rounds)}")
    print(f"study directories completed by a plain rerun: {sum(finals)} of {len(finals)}")
    print(f"load average: {os.getloadavg()}")
    return 0 if all(finals) and all(r["ok"] for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
