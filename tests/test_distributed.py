"""Data-parallel training (distributed.py): two gloo processes on loopback, launched the way a
user does (``stochep train --nproc 2``), against one process with the same global batch."""
import os
import subprocess
import sys

import pytest
import torch

from stochep.cli import main

TINY = ["--epochs", "1", "--no-progress", "--set", "layers=[24]", "--set", "T_free=8",
        "--set", "T_nudge=3", "--set", "optimizer=sgd", "--set", "lr=0.05"]


def _train(out, *extra, nproc=1):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "stochep", "train", "--out", str(out), *TINY, *extra]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr  # whole: a rank's own error comes first
    return torch.load(os.path.join(out, "checkpoint_last.pt"), weights_only=True)


@pytest.mark.slow
def test_two_processes_follow_one_process_with_the_same_global_batch(tmp_path):
    # mean-field spikes: then the only difference is where the batch is split
    one = _train(tmp_path / "one", "--set", "spikes=rate")
    two = _train(tmp_path / "two", "--set", "spikes=rate", nproc=2)
    assert two["world_size"] == 2 and len(two["spike_rng_ranks"]) == 2
    for k, v in one["model"].items():
        assert torch.allclose(v, two["model"][k], atol=1e-5), k
    summary = (tmp_path / "two" / "summary.json").read_text()
    assert '"world_size": 2' in summary
    assert not (tmp_path / "two" / "checkpoint_last.pt.tmp").exists()


@pytest.mark.slow
def test_a_data_parallel_run_resumes_exactly(tmp_path):
    # Bernoulli spikes; a constant lr, so 1 epoch + 1 resumed equals 2 planned epochs
    full = _train(tmp_path / "full", "--epochs", "2", "--set", "scheduler=none", nproc=2)
    _train(tmp_path / "part", "--set", "scheduler=none", nproc=2)
    resumed = _train(tmp_path / "part", "--resume", "--epochs", "2", nproc=2)
    for k, v in full["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    # each rank drew its own spikes, and both streams were saved and restored
    a, b = full["spike_rng_ranks"]
    assert not torch.equal(a["state"], b["state"])
    for x, y in zip(full["spike_rng_ranks"], resumed["spike_rng_ranks"]):
        assert torch.equal(x["state"], y["state"])


def test_data_parallel_without_a_run_directory_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs --out RUNDIR" in err


def test_every_collective_gets_a_tensor_on_the_process_device(monkeypatch):
    # NCCL refuses CPU tensors: a group of two is simulated and every all-reduce is recorded
    import torch.distributed as dist

    from stochep.training import distributed

    seen = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_reduce", lambda t: seen.append(t.device))
    dp = distributed.DataParallel("meta")  # a device that is not the CPU, on any machine
    p = torch.nn.Parameter(torch.zeros(4, device="meta"))
    p.grad = torch.zeros(4, device="meta")
    for call in (lambda: dp.sum(3, 1.5), lambda: dp.average_grads([p], 2)):
        try:
            call()
        except NotImplementedError:  # meta tensors hold no values to read back
            pass
    assert seen == [torch.device("meta")] * 2


def test_a_gpu_rank_gets_its_own_gpu(monkeypatch):
    from stochep.training.distributed import backend_for, rank_device

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert rank_device("cuda:0") == torch.device("cuda", 1)
    assert rank_device("cpu") == torch.device("cpu")
    assert backend_for("cuda") == "nccl" and backend_for("cpu") == "gloo"


def test_a_worker_abort_after_the_run_finished_is_not_a_failure(tmp_path, monkeypatch, capsys):
    # gloo may abort a worker in its destructor while the group closes; a complete run is
    # reported complete, an incomplete one still fails
    import subprocess as sp

    from stochep import cli

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    monkeypatch.setattr(sp, "run", lambda cmd, **kw: sp.CompletedProcess(cmd, -6))
    assert main(["train", "--out", str(out), "--nproc", "2", "--resume", "--epochs", "1"]) == 0
    assert "the run in" in capsys.readouterr().err
    assert not cli._finished(str(tmp_path / "nothing"))
    (out / "summary.json").write_text('{"epochs": 0}')
    assert main(["train", "--out", str(out), "--nproc", "2", "--resume", "--epochs", "1"]) == -6
