"""Issue 13 in the grid runner, in-process (``--n-jobs 1``): retries (item 5), a read-only dry run (8),
leftover temporaries (9), exit codes of environment errors (10), permissions (13), provenance (3)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

import experiments.store as store_module
from experiments import cell as cell_module
from experiments.spec import STUDIES_DIR
from experiments.store import StudyPaths, read_study

ONE_SEED = ("--seed-list", "0", "--fractions", "1.0")  # three cells, one per variant


def cells_run(stdout: str) -> int:
    line = next(x for x in stdout.splitlines() if "cell(s) run in" in x)
    return int(line.split()[0])


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its size, mode and modification time."""
    return {
        str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mode, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def fail_when_lr(monkeypatch):
    """Make every cell trained with learning rate ``lr`` fail (a planted crash inside ``fit``)."""
    real = cell_module.fit

    def plant(lr: float) -> None:
        def flaky(model, data, config, seed, **kwargs):
            if config.lr == lr:
                raise RuntimeError(f"planted failure at lr={lr}")
            return real(model, data, config, seed, **kwargs)

        monkeypatch.setattr(cell_module, "fit", flaky)

    return plant


def write_study(tmp_path: Path, lr: float, name: str = "retry") -> Path:
    raw = yaml.safe_load((STUDIES_DIR / "smoke.yaml").read_text()) | {"name": name}
    raw["train"] = dict(raw["train"], lr=lr)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# --- item 5: retries -------------------------------------------------------------------------------


def test_a_plain_rerun_retries_failed_cells_only(run_grid, tmp_path, monkeypatch):
    real = cell_module.fit

    def flaky(model, *args, **kwargs):  # fails in training: the checks before the grid build models
        if model.downsample_name == "maxpool":
            raise RuntimeError("planted failure in maxpool")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(cell_module, "fit", flaky)
    out = tmp_path / "study"
    argv = ("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert run_grid(*argv)[0] == 1
    code, stdout, _ = run_grid(*argv, "--no-retry-failed")
    assert code == 1 and cells_run(stdout) == 0
    monkeypatch.setattr(cell_module, "fit", real)  # the transient cause is gone
    ok_before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    code, stdout, _ = run_grid(*argv, "--dry-run")
    assert code == 0 and sum(line.startswith("retry") for line in stdout.splitlines()) == 1
    code, stdout, _ = run_grid(*argv)
    assert code == 0 and cells_run(stdout) == 1
    runs = read_study(out)["runs"]
    assert len(runs) == 3 and (runs["status"] == "ok").all()
    after = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    assert sum(after[k] != v for k, v in ok_before.items()) == 1  # the ok cells were not recomputed


def test_diverged_cells_are_results_and_not_retried(run_grid, study_yaml, tmp_path):
    path = study_yaml("exploding", variants=["avgpool", "strided"], train={"lr": 1e12, "optimizer": "sgd"})
    out = tmp_path / "study"
    assert run_grid("--study", path, "--out", out, "--n-jobs", "1", *ONE_SEED)[0] == 1
    code, stdout, _ = run_grid("--study", path, "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 1 and cells_run(stdout) == 0
    code, stdout, _ = run_grid("--study", path, "--out", out, "--n-jobs", "1", "--force", *ONE_SEED)
    assert cells_run(stdout) == 2  # --force still recomputes everything


def test_a_study_file_corrected_in_a_key_that_only_failed_cells_used_is_accepted(
    run_grid, tmp_path, fail_when_lr
):
    fail_when_lr(0.123)
    out = tmp_path / "study"
    wrong = write_study(tmp_path / "", 0.123)
    assert run_grid("--study", wrong, "--out", out, "--n-jobs", "1", *ONE_SEED)[0] == 1
    failed_ids = sorted(p.stem for p in (out / "runs").glob("*.parquet"))
    fixed = write_study(tmp_path, 0.003)  # the same file, corrected
    code, stdout, _ = run_grid("--study", fixed, "--out", out, "--n-jobs", "1", *ONE_SEED, "--dry-run")
    assert code == 0 and "3 failed cell(s) of the earlier study file would be moved" in stdout
    code, stdout, stderr = run_grid("--study", fixed, "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 0, stderr
    runs = read_study(out)["runs"]
    assert len(runs) == 3 and (runs["status"] == "ok").all() and (runs["lr"] == 0.003).all()
    for rid in failed_ids:  # the superseded failed cells are kept aside, not deleted, not mixed in
        assert (out / "quarantine" / "runs" / f"{rid}.parquet").exists()
    # now the directory holds ok cells: a change that would alter them is refused
    code, _, stderr = run_grid(
        "--study", write_study(tmp_path, 0.004), "--out", out, "--n-jobs", "1", *ONE_SEED
    )
    assert code == 2 and "differs in: train" in stderr and "3 ok" in stderr


# --- item 8: a dry run changes nothing --------------------------------------------------------------


def test_dry_run_is_read_only_even_with_damaged_files(run_grid, tmp_path):
    out = tmp_path / "study"
    assert run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", "--quiet", *ONE_SEED)[0] == 0
    victim = sorted((out / "predictions").glob("*.parquet"))[0]
    victim.write_bytes(b"damaged")
    (out / "runs" / "foreign.parquet").write_bytes(b"not ours")
    (out / "runs" / ".x.parquet.0f3a9b2c.tmp").write_bytes(b"")
    before = snapshot(out)
    with pytest.warns(UserWarning, match="left in place"):
        code, stdout, _ = run_grid("--study", "smoke", "--out", out, "--dry-run", *ONE_SEED)
    assert code == 0 and "3 cells, 2 done, 1 to run" in stdout
    assert snapshot(out) == before


# --- item 9: leftover temporaries ------------------------------------------------------------------


def test_leftover_temporaries_are_removed_at_start_and_counted(run_grid, tmp_path):
    out = tmp_path / "study"
    assert run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", "--quiet", *ONE_SEED)[0] == 0
    planted = [out / ".spec.yaml.k2j4h6g8.tmp", out / "runs" / ".abc.parquet.0f3a9b2c.tmp"]
    planted += [out / "predictions" / ".abc.parquet.1a2b3c4d.tmp"]
    kept = [out / "notes.tmp", out / "runs" / "README", out / ".thesis.tex.abcdefgh.tmp"]  # not ours
    for path in planted + kept:
        path.write_bytes(b"")
    code, stdout, _ = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 0 and "removed 3 leftover temporary file(s)" in stdout
    assert not any(p.exists() for p in planted) and all(p.exists() for p in kept)


# --- item 10: exit codes ---------------------------------------------------------------------------


def test_a_full_disk_mid_grid_exits_3_in_one_line_and_a_rerun_resumes(run_grid, tmp_path, monkeypatch):
    out = tmp_path / "study"
    real, calls = store_module.write_frame_atomic, []

    def fill_up(path, frame, *table):
        calls.append(path)
        if len(calls) > 7:  # the first cell (5 tables) is stored, the second runs out of space
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, frame, *table)

    monkeypatch.setattr(store_module, "write_frame_atomic", fill_up)
    argv = ("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)
    code, _, stderr = run_grid(*argv)
    assert code == 3
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert "No space left on device" in stderr and "1 of 3 cells stored" in stderr
    assert len(list((out / "runs").glob("*.parquet"))) == 1  # the cell that hit the full disk is not stored
    monkeypatch.setattr(store_module, "write_frame_atomic", real)
    code, stdout, _ = run_grid(*argv)
    assert code == 0 and cells_run(stdout) == 2


def test_a_directory_that_cannot_be_written_exits_3(run_grid, tmp_path, monkeypatch):
    out = tmp_path / "study"

    def denied(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.root))

    monkeypatch.setattr(StudyPaths, "prepare", denied)
    code, _, stderr = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 3 and "Permission denied" in stderr and str(out) in stderr
    assert len(stderr.strip().splitlines()) == 1


# --- item 13: permissions follow the umask ----------------------------------------------------------


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_results_files_and_folders_follow_the_umask(run_grid, tmp_path):
    out = tmp_path / "study"
    with umask(0o002):
        assert run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", "--quiet", *ONE_SEED)[0] == 0
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
    assert {m for m in modes.values()} == {0o664, 0o775}, modes
    assert stat.S_IMODE(out.stat().st_mode) == 0o775


# --- item 3: provenance appended, never lost --------------------------------------------------------


def test_every_invocation_is_appended_and_an_unreadable_record_is_kept_aside(run_grid, tmp_path):
    out = tmp_path / "study"
    argv = ("--study", "smoke", "--out", out, "--n-jobs", "1", "--quiet", *ONE_SEED)
    for _ in range(2):
        assert run_grid(*argv)[0] == 0
    env = json.loads((out / "environment.json").read_text())
    assert len(env["invocations"]) == 2
    assert all(i["spec"]["name"] == "smoke" and i["command"] for i in env["invocations"])
    (out / "environment.json").write_text('{"invocations": [truncated')
    with pytest.warns(UserWarning, match="environment.json could not be read"):
        assert run_grid(*argv)[0] == 0
    kept = out / "quarantine" / "provenance" / "environment.json"
    assert kept.read_text() == '{"invocations": [truncated'
    assert len(json.loads((out / "environment.json").read_text())["invocations"]) == 1


# --- item 10 on a real small file system (needs mount rights: root in a VM or container) -------------


@pytest.fixture
def small_disk(tmp_path):
    """A 400 kB tmpfs at ``tmp_path/disk`` (room for about two smoke cells), unmounted at teardown."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({made.stderr.decode().strip()}); the monkeypatched test covers it"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_exits_3_leaves_no_partial_file_and_a_rerun_resumes(run_grid, small_disk):
    import subprocess

    out = small_disk / "study"
    argv = ("--study", "smoke", "--out", out, "--n-jobs", "1", "--quiet", "--seed-list", "0,1")
    code, _, stderr = run_grid(*argv)
    assert code == 3, stderr
    assert len(stderr.strip().splitlines()) == 1 and "No space left on device" in stderr
    stored_now = len(list((out / "runs").glob("*.parquet")))
    assert 0 < stored_now < 12 and f"{stored_now} of 12 cells stored" in stderr
    assert not [p for p in out.rglob("*.tmp")]  # every interrupted write removed its temporary
    study = read_study(out)  # every file a reader sees is complete
    assert len(study["runs"]) == stored_now
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    code, stdout, _ = run_grid(*argv)
    assert code == 0 and len(read_study(out)["runs"]) == 12
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    code, _, stderr = run_grid(*argv[:-2], "--seed-list", "0,1,2")
    assert code == 3 and "Read-only file system" in stderr and len(stderr.strip().splitlines()) == 1
