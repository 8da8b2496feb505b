"""How short can the phases be? Gradient quality of a trained network per update order and length.

For each variant (``update`` and phase lengths, as ``--set`` strings) the spiking EP estimate on
one batch of a trained checkpoint is compared with BPTT through ``--T-bptt`` mean-field steps
(``stochep diagnose``'s :func:`~stochep.tools.diagnose.gradient_report`): per layer the mean
cosine and the signal-to-noise ratio over ``--seeds`` spike seeds, beside the steps each
training batch costs. Prints a table and writes JSON.

    python benchmarks/learning/phase_lengths.py --checkpoint RUN/checkpoint_last.pt \\
        --variant "update=sync T_free=60 T_nudge=15" --variant "update=async T_free=40 T_nudge=10"
"""
from __future__ import annotations

import argparse
import sys

from stochep.engine.dynamics import Dynamics
from stochep.rules.ep import EP
from stochep.tools.diagnose import gradient_report
from stochep.tools.results import print_table, write_json
from stochep.training.trainer import Trainer


def measure(checkpoint: str, variant: str, batch: int, seeds: int, T_bptt: int,
            data_dir: str | None) -> dict:
    tr = Trainer.from_checkpoint(checkpoint, data_dir=data_dir, overrides=variant.split())
    c = tr.cfg
    x, y = tr.network_inputs(batch), tr.data.y_train[:batch]
    rep = gradient_report(tr.net, x, y, EP.from_config(c), seeds, T_bptt,
                          dynamics=Dynamics.from_config(c))
    phases = 3 if c.estimator == "three-phase" else 2
    row = {"variant": variant, "steps": c.T_free + (phases - 1) * c.T_nudge}
    for i, layer in enumerate(rep["layers"]):
        row[f"cos{i}"] = round(layer["stoch_vs_bptt_cos"], 3)
    for i, layer in enumerate(rep["layers"]):
        row[f"snr{i}"] = round(layer["snr"], 2)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--variant", action="append", required=True,
                   help='space-separated KEY=VALUE overrides, e.g. "update=async T_free=40"')
    p.add_argument("--data-dir")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--T-bptt", type=int, default=120)
    p.add_argument("--json", default="phase_lengths.json")
    args = p.parse_args(argv)
    rows = [measure(args.checkpoint, v, args.batch, args.seeds, args.T_bptt, args.data_dir)
            for v in args.variant]
    print_table(rows, list(rows[0]))
    write_json(args.json, {"checkpoint": args.checkpoint, "batch": args.batch,
                           "seeds": args.seeds, "T_bptt": args.T_bptt, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
