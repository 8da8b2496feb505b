"""Pictures: training curves of run directories (``stochep plot``), and the one place that
imports matplotlib (the ``plot`` extra), so every command that draws says the same one line
when it is missing and still writes its numbers."""
from __future__ import annotations

import json
import os
import sys

NO_MATPLOTLIB = "matplotlib is not installed (pip install 'stochep[plot]'); no picture drawn"


def pyplot():
    """``matplotlib.pyplot`` (headless), or ``None`` when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def say_no_matplotlib(what: str) -> None:
    print(f"stochep: {NO_MATPLOTLIB}: {what}", file=sys.stderr)


def read_history(run_dir: str) -> list[dict]:
    """The per-epoch rows of a run directory's ``metrics.jsonl`` (ValueError if it has none)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError:
        raise ValueError(f"{run_dir} is not a run directory with metrics (no {path})") from None
    except json.JSONDecodeError:
        raise ValueError(f"{path} is not valid JSON lines") from None
    if not rows:
        raise ValueError(f"{path} has no finished epoch yet")
    return rows


def curves_table(histories: dict[str, list[dict]]) -> str:
    """The curves as text: one line per run and epoch."""
    lines = ["run  epoch  loss  train_acc  val_acc  test_acc  lr  firing_rates"]
    for name, rows in histories.items():
        for r in rows:
            acc = [("-" if r.get(k) is None else f"{r[k]:.4f}")
                   for k in ("train_acc", "val_acc", "test_acc")]
            rates = "/".join(f"{x:.3f}" for x in r.get("firing_rate", []))
            lines.append(f"{name}  {r['epoch']}  {r['train_loss']:.4f}  {'  '.join(acc)}  "
                         f"{r.get('lr', float('nan')):.3g}  {rates}")
    return "\n".join(lines)


def plot_runs(run_dirs: list[str], out: str) -> bool:
    """Draw loss, accuracies (train solid, validation dashed, test dotted), per-layer firing
    rates and the learning rate of each run, side by side; ``False`` without matplotlib."""
    histories = {_label(d, run_dirs): read_history(d) for d in run_dirs}
    plt = pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, rows) in enumerate(histories.items()):
        c = colors[i % len(colors)]
        ep = [r["epoch"] for r in rows]
        axes[0].plot(ep, [r["train_loss"] for r in rows], "o-", color=c, label=name)
        for key, style in (("train_acc", "-"), ("val_acc", "--"), ("test_acc", ":")):
            pts = [(e, r[key]) for e, r in zip(ep, rows) if r.get(key) is not None]
            if pts:
                axes[1].plot(*zip(*pts), style, marker="o", ms=3, color=c,
                             label=f"{name} {key[:-4]}")
        for layer in range(len(rows[0].get("firing_rate", []))):
            axes[2].plot(ep, [r["firing_rate"][layer] for r in rows], "-", marker="o", ms=3,
                         color=c, alpha=1.0 - 0.6 * layer / max(1, len(rows[0]["firing_rate"])),
                         label=f"{name} layer {layer + 1}")
        axes[3].plot(ep, [r.get("lr") for r in rows], "o-", color=c, label=name)
    for ax, title in zip(axes, ("training loss", "accuracy (train -, val --, test :)",
                                "firing rate per layer", "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def _label(run_dir: str, all_dirs: list[str]) -> str:
    name = os.path.basename(os.path.normpath(run_dir))
    return name if [os.path.basename(os.path.normpath(d)) for d in all_dirs].count(name) == 1 \
        else os.path.normpath(run_dir)
