"""Fault tolerance of a trained network (``stochep faults``): its test accuracy on a device with
each kind of fault (``engine/faults.py``: dead and stuck neurons, dropped spikes, weight
variation) at a sweep of levels, and at combined fault points.

    stochep faults --checkpoint RUN/checkpoint_best.pt --out DIR
    stochep faults --checkpoint C --sweep dead=0,0.1,0.2 --point dead=0.1,drop=0.2 --out DIR

Each level is scored on the whole test set (or its first ``eval_subset`` samples) with the run's
own evaluation (free phase, readout, spike stream seeded afresh), once per fault draw
``seed = 0 .. seeds-1`` (which neurons die, which factors the weights get); the accuracy is the
mean over draws. Draw 0 is the chip a run trained with ``faults.seed: 0`` learned on. Writes
``DIR/faults.json`` and, with matplotlib, ``DIR/faults.png``.
"""
from __future__ import annotations

import json
import os

from stochep.engine.faults import KINDS, SPREADS, parse_spec

DEFAULT_SWEEP = {"dead": [0.05, 0.1, 0.2, 0.4], "stuck": [0.01, 0.02, 0.05, 0.1],
                 "drop": [0.1, 0.2, 0.4, 0.6], "variation": [0.1, 0.2, 0.4, 0.8]}


def _value(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None


def _kind(name: str, where: str) -> str:
    if name not in KINDS:
        from stochep.validation import suggest

        raise ValueError(f"{where}: unknown fault kind {name!r}{suggest(name, KINDS)}; kinds: "
                         f"{', '.join(KINDS)}")
    return name


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``"dead=0,0.1,0.2"`` -> ``("dead", [0.0, 0.1, 0.2])``: one kind at several levels."""
    where = f"--sweep {text!r}"
    if text.count("=") != 1:
        raise ValueError(f"{where} must be KIND=LEVEL,LEVEL,... (e.g. dead=0,0.1,0.2)")
    kind, levels = text.split("=")
    values = [_value(v, where) for v in levels.split(",") if v.strip()]
    if not values:
        raise ValueError(f"{where} gives no level")
    return _kind(kind.strip(), where), values


def parse_point(text: str) -> dict[str, float]:
    """``"dead=0.1,drop=0.2"`` -> ``{"dead": 0.1, "drop": 0.2}``: several kinds at once."""
    where = f"--point {text!r}"
    out = {}
    for part in text.split(","):
        if part.count("=") != 1:
            raise ValueError(f"{where} must be KIND=LEVEL[,KIND=LEVEL...] (e.g. "
                             "dead=0.1,drop=0.2)")
        kind, level = part.split("=")
        out[_kind(kind.strip(), where)] = _value(level, where)
    return out


def evaluate_faults(trainer, sweeps: dict[str, list[float]], points: list[dict],
                    seeds: int = 1, layers: str = "hidden", eval_subset: int = 0) -> dict:
    """Test accuracy of ``trainer``'s network with no fault, at every level of ``sweeps``
    (kind -> levels) and at every combined point of ``points``, each the mean over fault draws
    ``0 .. seeds-1``. The trainer's own faults are restored afterwards."""
    if layers not in SPREADS:
        raise ValueError(f"--layers must be one of {', '.join(SPREADS)}, got {layers!r}")
    x, y = trainer.data.x_test, trainer.data.y_test
    if eval_subset:
        x, y = x[:eval_subset], y[:eval_subset]
    own = dict(trainer.cfg.faults)

    def score(faults: dict) -> dict:
        accs = []
        for seed in range(seeds):
            trainer.set_faults({**faults, "layers": layers, "seed": seed} if faults else {})
            accs.append(trainer.evaluate(x, y))
            if not faults:
                break
        return {"accuracy": sum(accs) / len(accs), "accuracies": accs,
                "realised": None if trainer.net.faults is None
                else trainer.net.faults.describe()}

    try:
        clean = score({})["accuracy"]
        out_sweeps = {}
        for kind, levels in sweeps.items():
            out_sweeps[kind] = [{"level": v, **(score({kind: v}) if v else
                                                {"accuracy": clean, "accuracies": [clean],
                                                 "realised": None})} for v in levels]
        out_points = [{"faults": p, **score(p)} for p in points]
    finally:
        trainer.set_faults(own)
    for rows in list(out_sweeps.values()) + [out_points]:
        for r in rows:
            r["loss_points"] = 100 * (clean - r["accuracy"])
    return {"clean_accuracy": clean, "n_test": len(y), "seeds": seeds, "layers": layers,
            "sweeps": out_sweeps, "points": out_points}


def format_report(rep: dict) -> str:
    lines = [f"no fault: {100 * rep['clean_accuracy']:.2f}% on {rep['n_test']} test samples "
             f"({rep['seeds']} fault draw(s) per level, faults in the {rep['layers']} layers)"]
    for kind, rows in rep["sweeps"].items():
        cells = "  ".join(f"{r['level']:g}: {100 * r['accuracy']:.2f}%" for r in rows)
        lines.append(f"{kind:<10}{cells}")
    for p in rep["points"]:
        what = ", ".join(f"{k}={v:g}" for k, v in p["faults"].items())
        lines.append(f"{what}: {100 * p['accuracy']:.2f}% (loses {p['loss_points']:.2f} "
                     "points)")
    return "\n".join(lines)


def plot_faults(rep: dict, path: str) -> bool:
    """Accuracy against level, one panel per fault kind; False without matplotlib."""
    from stochep.tools.plot import pyplot

    plt = pyplot()
    if plt is None:
        return False
    kinds = list(rep["sweeps"])
    fig, axes = plt.subplots(1, max(len(kinds), 1), figsize=(3.2 * max(len(kinds), 1), 3),
                             squeeze=False)
    labels = {"dead": "dead fraction", "stuck": "stuck fraction", "drop": "spike drop p",
              "variation": "weight variation (rel. std)"}
    for ax, kind in zip(axes[0], kinds):
        rows = sorted(rep["sweeps"][kind], key=lambda r: r["level"])
        if rows[0]["level"] > 0:  # the perfect device as the line's start
            rows = [{"level": 0.0, "accuracy": rep["clean_accuracy"]}] + rows
        ax.plot([r["level"] for r in rows], [100 * r["accuracy"] for r in rows], "o-")
        ax.axhline(100 * rep["clean_accuracy"], color="grey", lw=0.8, ls="--")
        ax.set_xlabel(labels.get(kind, kind))
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def run_command(args) -> tuple[dict, str]:
    """``stochep faults``: the report of ``args`` (CLI namespace), written under ``args.out``."""
    from stochep.tools.plot import say_no_matplotlib
    from stochep.training.trainer import Trainer
    from stochep.validation import check_int_at_least

    check_int_at_least("--seeds", args.seeds, 1)
    check_int_at_least("--eval-subset", args.eval_subset, 0)
    sweeps: dict[str, list[float]] = {}
    for text in args.sweep:
        kind, levels = parse_sweep(text)
        sweeps.setdefault(kind, []).extend(levels)
    points = [parse_point(t) for t in args.point]
    if not sweeps and not points:
        sweeps = {k: [0.0, *v] for k, v in DEFAULT_SWEEP.items()}
    for spec in [{k: v} for k, levels in sweeps.items() for v in levels] + points:
        parse_spec({**spec, "layers": args.layers}, 2)  # a bad level: one line, nothing loaded
    if not os.path.isfile(args.checkpoint):
        raise ValueError(f"--checkpoint {args.checkpoint}: no such file")
    trainer = Trainer.from_checkpoint(args.checkpoint, data_dir=args.data_dir)
    rep = evaluate_faults(trainer, sweeps, points, args.seeds, args.layers, args.eval_subset)
    rep.update(checkpoint=os.path.abspath(args.checkpoint), epoch=trainer.epoch,
               preset=trainer.cfg.preset, algo=trainer.cfg.algo, neuron=trainer.cfg.neuron,
               trained_with_faults=trainer.cfg.faults, quantize=trainer.cfg.quantize)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "faults.json")
    with open(path, "w") as f:
        json.dump(rep, f, indent=2)
    files = [path]
    png = os.path.join(args.out, "faults.png")
    if rep["sweeps"]:
        if plot_faults(rep, png):
            files.append(png)
        else:
            say_no_matplotlib(png)
    return rep, format_report(rep) + "\nwrote " + ", ".join(files)
