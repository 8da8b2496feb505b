"""Peak memory of a training step (section 4.4, Table 2): the tracker counts exactly, EP's peak
does not grow with T_free while BPTT's does, and ``stochep memory`` runs end to end."""
import json

import pytest
import torch

from stochep.cli import main
from stochep.tools import memory, memory_report
from stochep.tools.memory import StorageTracker, measure_step_memory
from stochep.training.config import Config


def test_tracker_counts_hand_known_allocations():
    pre = torch.ones(1000)  # exists before: in-place ops on it are free
    with StorageTracker() as t:
        a = torch.empty(1000)  # 4000 B
        b = torch.zeros(250, dtype=torch.float64)  # 2000 B  -> 6000
        v = b[10:].view(-1)  # view: no new storage
        b.add_(1.0)
        pre.mul_(2.0)
        del a  # -> 2000
        c = torch.ones(500)  # -> 4000
        d = c * 2  # -> 6000
        del v, b  # the view kept b's storage alive until now -> 4000
        assert t.current == 4000
        tensors = [torch.empty(n) for n in (10, 20, 30)]  # -> 4240
    assert t.peak == 6000 and t.current == 4240 and t.n_allocs == 7
    del c, d, tensors
    assert t.current == 0


def test_tracker_sees_autograd_saved_tensors_and_backward():
    x = torch.randn(1000, requires_grad=True)
    with StorageTracker() as t:
        y = x.exp()  # 4000 B, saved for backward
        z = y.sum()  # 4 B
        del y
        assert t.current == 4004  # the graph keeps y alive
        g = torch.autograd.grad(z, x)[0]  # backward allocates (seen by the mode)
        del z
    assert t.current == g.nbytes == 4000  # only the gradient is left
    assert t.peak >= 4004 + 4000


def _small(T_free):
    return Config(dataset="digits", layers=[32], n_perclass=1, T_free=T_free, T_nudge=10)


def test_ep_peak_flat_in_T_while_bptt_grows_linearly():
    ep = [measure_step_memory(_small(T), "ep", 32)["peak_bytes"] for T in (50, 100)]
    bp = [measure_step_memory(_small(T), "bptt", 32)["peak_bytes"] for T in (50, 100)]
    assert ep[0] == ep[1]  # EP keeps only the current state
    assert bp[0] > ep[0]
    assert 1.8 < bp[1] / bp[0] < 2.2  # BPTT stores every step


def test_tracker_agrees_with_profiler_allocator_events():
    profiler = pytest.importorskip("torch.profiler")
    from stochep.engine.rng import SpikeRNG
    from stochep.rules.bptt import bptt_gradients
    from stochep.training.models import build_network

    cfg = _small(20)
    net = build_network(cfg, (64,), 10)
    x, y = torch.rand(16, 64), torch.randint(0, 10, (16,))
    with profiler.profile(activities=[profiler.ProfilerActivity.CPU], profile_memory=True) as p:
        bptt_gradients(net, x, y, 20, SpikeRNG(0))
    try:
        recs = sorted((e.start_ns(), e.nbytes()) for e in p.profiler.kineto_results.events()
                      if e.name() == "[memory]")
    except AttributeError:
        pytest.skip("profiler memory events not exposed by this torch")
    cur = peak = 0
    for _, n in recs:
        cur += n
        peak = max(peak, cur)
    with StorageTracker() as t:
        bptt_gradients(net, x, y, 20, SpikeRNG(0))
    assert peak > 0 and abs(t.peak - peak) <= 0.01 * peak


@pytest.mark.slow
def test_cli_memory_runs_in_subprocesses_and_bptt_exceeds_ep(tmp_path, capsys, monkeypatch):
    """mnist-1fc (dense, T_free = 60), batch 64: the CLI measures each rule in its own process.

    (At batch 8 both peaks are the AdamW step's parameter-sized temporaries.)"""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    calls = []
    real = memory.measure_in_subprocess
    monkeypatch.setattr(memory, "measure_in_subprocess",
                        lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    out = tmp_path / "m.json"
    assert main(["memory", "--preset", "mnist-1fc", "--batch-size", "64", "--json", str(out)]) == 0
    assert calls == ["ep", "bptt"]
    r = json.loads(out.read_text())
    assert r["T_free"] == 60 and r["batch_size"] == 64
    assert r["bptt_mb"] > r["ep_mb"] > 0 and r["ratio"] > 1
    stdout = capsys.readouterr().out
    assert "BPTT/EP" in stdout and "MB" in stdout


@pytest.mark.parametrize("argv,needle", [
    (["memory"], "--preset is required"),
    (["memory", "--table", "--preset", "mnist-1fc"], "drop --preset"),
    (["memory", "--preset", "mnist-9fc"], "unknown preset"),
    (["memory", "--preset", "mnist-1fc", "--batch-size", "0"], "--batch-size"),
])
def test_user_errors_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def _fake_compare(cfg, batch, device="cpu", algos=("ep", "bptt")):
    ep, bp = 1.0, 0.1 * cfg.T_free
    return {"preset": cfg.preset, "dataset": cfg.dataset, "batch_size": batch,
            "T_free": cfg.T_free, "ep_mb": ep, "bptt_mb": bp, "ratio": bp / ep, "runs": {}}


def test_table_lists_every_preset_with_the_papers_numbers(monkeypatch):
    from stochep.training.presets import preset_names

    monkeypatch.setattr(memory_report, "compare", _fake_compare)
    res, text = memory_report.run_command(None, table_mode=True)
    assert [r["preset"] for r in res["rows"]] == preset_names()
    row = {r["preset"]: r for r in res["rows"]}["mnist-2fc"]
    assert row["batch_size"] == 128 and row["paper"]["ep_mb"] == 147
    assert row["paper"]["bptt_mb"] == 195 and "paper" in text and "179" in text
    assert memory_report.table_batch_size("imdb") == 64

    def failing(cfg, *a, **k):
        raise memory_report.ConfigError(f"no input shape for {cfg.preset}")

    monkeypatch.setattr(memory_report, "compare", failing)
    res, text = memory_report.run_command(None, table_mode=True, batch_size=8)
    assert all("error" in r for r in res["rows"]) and "n/a" in text
    assert "mnist-1fc: no input shape for mnist-1fc" in text


def test_sweep_plots_or_says_how_to_get_the_plot(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(memory_report, "compare", _fake_compare)
    png = tmp_path / "sweep.png"
    res, text = memory_report.run_command("mnist-1fc", sweep_T=[10, 20], plot=str(png))
    assert [r["T_free"] for r in res["rows"]] == [10, 20]
    try:
        import matplotlib  # noqa: F401
        assert png.stat().st_size > 0 and "plot:" in text
    except ImportError:
        assert "pip install 'stochep[plot]'" in capsys.readouterr().err
    monkeypatch.setattr(memory_report, "plot_sweep", lambda res, path: False)
    _, text = memory_report.run_command("mnist-1fc", sweep_T=[10], plot=str(png))
    err = capsys.readouterr().err
    assert "pip install 'stochep[plot]'" in err and len(err.strip().splitlines()) == 1
    assert "BPTT MB" in text  # the numbers are still there
