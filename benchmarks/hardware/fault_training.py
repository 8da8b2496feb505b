"""One epoch of training on a faulty device, from a trained run's best checkpoint: how much of the
accuracy the faults cost does the network win back by learning around them?

    python benchmarks/hardware/fault_training.py --checkpoint RUN/checkpoint_best.pt \
        --faults dead=0.1,drop=0.2 --tag NAME --out DIR [--control]

Scores on the whole test set: ``clean``, the checkpoint on a perfect device; ``faulty``, the
checkpoint on the faulty device (fault draw 0: the chip); ``trained``, after one more epoch
trained with the faults present (``faults.*`` set on the resumed run, the dead neurons the same
ones), on that device; with ``--control``, after one more epoch trained on a perfect device, on
the faulty one (how much of the gain one more epoch gives anyway). Recovered fraction:
``(trained - faulty) / (clean - faulty)``. The extra epoch continues the run's schedule as
``stochep train --resume --epochs E+1`` does. Writes ``benchmarks/results/faulttrain_<tag>.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from stochep.tools.faults import parse_point
from stochep.tools.results import write_json
from stochep.training.checkpoint import load_checkpoint
from stochep.training.trainer import Trainer


def one_more_epoch(ckpt: str, epochs: int, faults: dict, out: str) -> Trainer:
    overrides = [f"faults.{k}={v}" for k, v in faults.items()]
    tr = Trainer.from_checkpoint(ckpt, epochs=epochs, overrides=overrides, out_dir=out)
    tr.fit()
    return tr


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--faults", required=True, help="KIND=LEVEL[,KIND=LEVEL...]")
    p.add_argument("--tag", required=True)
    p.add_argument("--out", required=True, help="folder for the runs of the extra epoch")
    p.add_argument("--control", action="store_true",
                   help="also train the extra epoch on a perfect device")
    args = p.parse_args(argv)
    faults = {**parse_point(args.faults), "seed": 0}
    t0 = time.perf_counter()
    base = Trainer.from_checkpoint(args.checkpoint)
    x, y = base.data.x_test, base.data.y_test
    res = {"checkpoint": os.path.abspath(args.checkpoint), "faults": faults,
           "epoch": base.epoch, "n_test": len(y), "preset": base.cfg.preset,
           "algo": base.cfg.algo, "neuron": base.cfg.neuron}
    res["clean"] = base.evaluate(x, y)
    base.set_faults(faults)
    res["faulty"] = base.evaluate(x, y)
    print(f"clean {res['clean']:.4f}  faulty {res['faulty']:.4f}", flush=True)
    epochs = load_checkpoint(args.checkpoint)["epoch"] + 1
    tr = one_more_epoch(args.checkpoint, epochs, faults, os.path.join(args.out, "faulty"))
    res["trained"] = tr.evaluate(x, y)  # on the faulty device it trained on
    res["trained_val"] = tr.history[-1]["val_acc"]
    tr.set_faults({})
    res["trained_clean"] = tr.evaluate(x, y)
    print(f"trained with faults: faulty {res['trained']:.4f} clean {res['trained_clean']:.4f}",
          flush=True)
    if args.control:
        ctl = one_more_epoch(args.checkpoint, epochs, {}, os.path.join(args.out, "control"))
        res["control_clean"] = ctl.evaluate(x, y)
        ctl.set_faults(faults)
        res["control"] = ctl.evaluate(x, y)
        print(f"control (clean epoch): faulty {res['control']:.4f} clean "
              f"{res['control_clean']:.4f}", flush=True)
    lost = res["clean"] - res["faulty"]
    res["loss_points"] = 100 * lost
    res["recovered_fraction"] = (res["trained"] - res["faulty"]) / lost if lost > 0 else None
    res["wall_minutes"] = (time.perf_counter() - t0) / 60
    write_json(f"faulttrain_{args.tag}.json", res)
    print(f"lost {100 * lost:.2f} points; recovered fraction {res['recovered_fraction']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
