"""``benchmarks/gpu/check.py`` in its quick CPU mode, on tiny budgets: a typo in the GPU script
fails here, not on the GPU (docs/gpu.md)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "benchmarks" / "gpu" / "check.py"

PARTS = {  # part -> extra arguments (one small preset, synthetic data where data is big)
    "env": [],
    "tests": ["--tests-k", "sampler"],
    "throughput": ["--presets", "mnist-1fc", "--batch", "2"],
    "options": ["--presets", "mnist-1fc", "--batch", "2"],
    "memory": ["--presets", "mnist-1fc"],
    "cifar": ["--synthetic", "--max-batches", "2", "--evals", "1"],
    "mnist": ["--synthetic"],
}


def _run(tmp_path, part, extra, budget=40):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, str(CHECK), part, "--out", str(tmp_path), "--device",
                          "cpu", "--quick", "--budget", str(budget), *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    out = tmp_path / f"gpu_{part}.json"
    assert out.exists(), res.stdout + res.stderr
    return res, json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("part", sorted(PARTS))
def test_each_part_runs_in_quick_mode_and_writes_its_json(tmp_path, part):
    res, d = _run(tmp_path, part, PARTS[part])
    assert res.returncode == 0, (d.get("error"), d.get("traceback"), res.stderr[-2000:])
    assert d["part"] == part and d["device"] == "cpu" and d["quick"] is True
    assert d["status"] in ("ok", "partial"), d
    assert d["machine"]["torch"] and d["commit"] is not None  # provenance of write_json
    rows = d.get("rows") or []
    assert not [r for r in rows if "error" in r or "ep_error" in r or "bptt_error" in r], rows
    if part == "throughput":
        assert rows[0]["engine_samples_s"] > 0 and rows[0]["reference_samples_s"] > 0
    if part == "memory":
        assert rows[0]["ep_mb"] > 0 and rows[0]["bptt_mb"] > 0 and rows[0]["paper"]
    if part == "options":
        assert {r["option"] for r in rows} >= {"eager fp32 (baseline)", "bf16 dynamics",
                                               "compile=true", "update=async (same T)"}
    if part == "cifar":
        assert d["curve"] and d["steady_samples_s"] > 0 and d["projected_paper_run_h"] > 0
    if part == "mnist":
        assert d["epochs_done"] == 1 and 0 <= d["test_acc"] <= 1
    if part == "tests":
        assert d["counts"].get("passed", 0) >= 2 and not d["counts"].get("failure")


@pytest.mark.slow
def test_a_failed_part_is_recorded_with_what_it_wrote(tmp_path):
    _run(tmp_path, "env", [])
    log = tmp_path / "env.log"
    log.write_text("Traceback ...\nRuntimeError: CUDA error: out of memory\n")
    res = subprocess.run([sys.executable, str(CHECK), "fail", "env", "--out", str(tmp_path),
                          "--device", "cpu", "--rc", "124", "--log", str(log)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    d = json.loads((tmp_path / "gpu_env.json").read_text())
    assert d["status"] == "timeout" and d["returncode"] == 124
    assert "out of memory" in d["log_tail"] and d["modules"]  # the part's own rows are kept


@pytest.mark.slow
def test_check_sh_parses_its_arguments_and_guards_each_part(tmp_path):
    """The shell wrapper end to end on the cheapest part, and a part that fails (an unknown
    preset) is recorded while the script goes on to the next one."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "check.sh"), str(tmp_path),
                          "--device", "cpu", "--quick", "--no-install", "--parts", "env nosuchpart",
                          "--budget", "env=40"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode != 0  # the unknown part failed ...
    assert json.loads((tmp_path / "gpu_env.json").read_text())["status"] == "ok"
    bad = json.loads((tmp_path / "gpu_nosuchpart.json").read_text())  # ... and was recorded
    assert bad["status"] == "failed"
    assert "failed: nosuchpart" in res.stdout


def test_minipytest_runs_the_device_tests_where_pytest_is_missing(tmp_path):
    """The GPU machine's Python may have no pytest: the stand-in runs the same file."""
    xml = tmp_path / "out.xml"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "minipytest.py"),
                          f"--junitxml={xml}", "-k", "sampler", "tests/test_device.py"],
                         cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
    from check import _junit
    rows = _junit(xml)
    assert len(rows) == 2 and all(r["outcome"] == "passed" for r in rows), rows


@pytest.mark.slow
def test_first_contact_runs_on_the_cpu_and_records_every_check(tmp_path):
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "first_contact.sh"),
                          str(tmp_path), "--device", "cpu", "--quick"],
                         capture_output=True, text=True, timeout=150, check=False,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    d = json.loads((tmp_path / "gpu_first_contact.json").read_text())
    assert res.returncode == 0 and d["status"] == "ok", res.stdout + res.stderr
    checks = d["checks"]
    assert set(checks) == {"nccl", "syncs", "profile", "diagnose", "compile", "graphs",
                           "bf16_uniform", "deterministic"}
    assert "need a GPU" in checks["graphs"]["skipped"]
    assert checks["nccl"]["sum"] == [1.5, 2.0] and checks["nccl"]["tensor_device"] == "cpu"
    assert checks["profile"]["aten_ops_per_batch"] > 0
    assert checks["bf16_uniform"]["float32"]["max"] < 1.0  # what the spikes draw
    assert checks["deterministic"]["identical_weights"] is True
    assert "commit" in d and "machine" in d
