"""The ensemble comparison (bench_ensemble.py) runs and prints one row per operator."""

from __future__ import annotations

import bench_ensemble as bench


def test_the_benchmark_prints_one_row_per_variant(capsys):
    bench.main(
        ["--variants", "maxpool", "--seeds", "2", "--steps", "4", "--eval-every", "2", "--n-train", "40"]
    )
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[1].split() == ["variant", "fit", "img/s", "ensemble", "img/s", "ratio", "load"]
    variant, one, many, ratio, _ = rows[2].split()
    assert variant == "maxpool" and float(one) > 0 and float(many) > 0
    assert abs(float(ratio) - float(many) / float(one)) < 0.02 + 0.01 * float(ratio)


def test_the_gpu_check_compares_verdicts_and_intervals_row_by_row(tmp_path):
    import gpu_check
    import pandas as pd

    for name, verdicts, lows in (
        ("cpu", ["supported", "reversed"], [0.1, -0.5]),
        ("gpu", ["supported", "not resolved"], [0.3, 0.2]),
    ):
        (tmp_path / name / "tables").mkdir(parents=True)
        table = pd.DataFrame({"verdict": verdicts, "low": lows, "high": [x + 0.1 for x in lows]})
        table.to_csv(tmp_path / name / "tables" / "h.csv", index=False)
        pd.DataFrame({"x": [1]}).to_csv(tmp_path / name / "tables" / "other.csv", index=False)
    lines = gpu_check.compare_reports(tmp_path / "cpu", tmp_path / "gpu")
    # row 1: [0.1, 0.2] and [0.3, 0.4] do not overlap; row 2: verdicts differ, [-0.5,-0.4] vs [0.2,0.3] apart
    assert lines == ["h.csv: 1 of 2 verdicts differ, 2 of 2 intervals do not overlap"]
