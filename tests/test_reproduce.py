"""`stochep reproduce`: rows run or collected, Markdown report with ours, paper's, difference."""
import json

import pytest

from stochep.cli import main
from stochep.tools.reproduce import command, report, table1


@pytest.mark.slow
def test_energy_table_runs_then_collects_and_reports_side_by_side(tmp_path, capsys):
    assert main(["reproduce", "energy", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "energy.md").read_text()
    assert "| ours | paper | difference |" in text and "budget cpu-small" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| 2FC"))
    ours, paper, diff = (c.strip() for c in row.split("|")[2:5])
    assert paper == "19.00" and float(diff) == round(float(ours) - 19.0, 2)
    assert main(["reproduce", "energy", "--out", str(tmp_path)]) == 0  # nothing left to run
    assert (tmp_path / "energy.md").read_text().count("| collected |") == 2
    capsys.readouterr()


def test_table1_rows_run_resume_or_collect_and_missing_budget_rows_are_not_run(tmp_path):
    rows = table1()
    row = next(r for r in rows if r.key == "mnist-1fc")
    d = tmp_path / "table1" / "mnist-1fc"
    cmd = command(row, "cpu-small", str(d), "/data")
    assert cmd[:3] == ["train", "--preset", "mnist-1fc"] and "/data/mnist" in cmd
    assert cmd[cmd.index("--epochs") + 1] == "3"
    d.mkdir(parents=True)
    (d / "checkpoint_last.pt").write_bytes(b"x")
    (d / "summary.json").write_text(json.dumps({"epochs": 1, "test_accuracy_at_best_val": 0.9}))
    assert command(row, "cpu-small", str(d), None)[:2] == ["train", "--resume"]
    (d / "summary.json").write_text(json.dumps({"epochs": 3, "test_accuracy_at_best_val": 0.9}))
    assert command(row, "cpu-small", str(d), None) is None  # finished: collected
    text = report("table1", "cpu-small", str(tmp_path), {"mnist-1fc": "collected"},
                  ran=(0, 2, 90.0))
    assert "ran 0 command(s), 2 at a time, in 1.5 min of wall time" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| mnist-1fc (mnist), EP |"))
    assert "| 90.00 | 97.46 | -7.46 | collected |" in line
    cifar = next(r for r in rows if r.key == "cifar10-5c")
    assert isinstance(cifar.runs["cpu-small"], str)  # listed as not run, never filled in
    assert "| cifar10-5c (cifar10), EP | - | 81.33 | - |" in text
    small = next(r for r in rows if r.key == "mnist-2c").runs["cpu-small"]
    assert small[:2] == ["--preset", "mnist-2c-small"]  # the shipped variant stands in
    assert {"mnist-1fc-bptt", "cifar10-5c-fa", "cifar10-5c-id"} <= {r.key for r in rows}
    assert all(not r.key.endswith("-small") for r in rows)
