"""The homework-sweep comparison (bench_homework.py) runs and compares like with like."""

from __future__ import annotations

import bench_homework as bench
import torch

from downscalexr.train import TrainConfig


def test_both_sides_take_the_same_steps_and_count_the_images_they_trained_on():
    data = bench.homework_data(per_class=2, n_val=6, size=16, seed=0)  # 6 training images
    assert len(data.y_train) == 6 and torch.equal(torch.bincount(data.y_train), torch.tensor([2, 2, 2]))
    # batches of 4 over 6 images: 4, 2, 4, 2 for 4 steps
    assert bench.plain_loop(data, bench.small_cnn(16, 0), steps=4, batch=4, lr=1e-3, seed=0) == 12
    config = TrainConfig(batch_size=4, steps=4, eval_every=2)
    assert bench.suite_fit(data, bench.small_cnn(16, 0), config, seed=0) == 16  # full batches


def test_the_benchmark_prints_one_row_per_setting(capsys):
    bench.main(["--per-class", "2", "--steps", "4", "--batch", "4", "--val", "6", "--eval-every", "2",
                "--size", "16", "--rounds", "1"])  # fmt: skip
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[1].split() == ["per", "class", "plain", "img/s", "fit", "img/s", "ratio", "load"]
    per_class, plain, suite, ratio, _ = rows[2].split()
    assert per_class == "2" and float(plain) > 0 and float(suite) > 0
    assert abs(float(ratio) - float(suite) / float(plain)) < 0.02 + 0.01 * float(ratio)


def test_the_sweep_runs_the_grid_and_compares_whole_machine_throughput(capsys, kept_process_state):
    with kept_process_state():
        bench.main(["--sweep", "--per-class", "2", "4", "--sweep-seeds", "1", "--steps", "4", "--batch", "4",
                    "--val", "6", "--eval-every", "2", "--size", "16"])  # fmt: skip
    rows = capsys.readouterr().out.strip().splitlines()
    assert "sweep of 2 settings x 1 seeds" in rows[0]
    assert rows[1].split() == ["plain", "img/s", "grid", "img/s", "ratio", "load"]
    plain, grid, ratio, _ = (float(x) for x in rows[2].split())
    assert plain > 0 and grid > 0 and abs(ratio - grid / plain) < 0.02 + 0.01 * ratio
