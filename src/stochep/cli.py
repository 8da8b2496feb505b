"""Command line: ``stochep train | eval | gradcheck``.

Errors the user can fix (bad config, missing data, damaged checkpoint, invalid values) print one
line on stderr and exit with code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from .checkpoint import CheckpointError
from .config import Config, ConfigError, load_yaml
from .data import DataError
from .train import TrainingDiverged

USER_ERRORS = (ConfigError, DataError, CheckpointError, ValueError)


def _add_train(sub):
    p = sub.add_parser("train", help="train a network with stochastic EP")
    p.add_argument("--config", help="YAML file of config keys")
    p.add_argument("--dataset")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="run directory (config, metrics, checkpoints)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true")


def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck", help="compare EP and BPTT gradients (mean field, float64)")
    p.add_argument("--widths", type=int, nargs="+", default=[64, 64, 64],
                   help="input and hidden widths (the input must be 64 for digits)")
    p.add_argument("--n-perclass", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--beta", type=float, default=1e-4)
    p.add_argument("--T", type=int, default=1000, help="steps of each phase (must settle)")
    p.add_argument("--init-scale", type=float, default=0.5)
    p.add_argument("--kappa", type=float, default=2.0)
    p.add_argument("--lam", type=float, default=0.5)
    p.add_argument("--estimator", default="three-phase")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.99)


def build_config(args) -> Config:
    cfg = Config()
    if args.config:
        cfg = Config.from_dict(load_yaml(args.config))
    for key, val in (("dataset", args.dataset), ("data_dir", args.data_dir),
                     ("epochs", args.epochs), ("batch_size", args.batch_size),
                     ("seed", args.seed)):
        if val is not None:
            cfg.set(key, val)
    return cfg.apply_overrides(args.set).validate()


def cmd_train(args) -> int:
    from .data import load_dataset
    from .train import Trainer

    cfg = build_config(args)
    if args.resume and not args.out:
        raise ConfigError("--resume needs --out RUNDIR")
    data = load_dataset(cfg.dataset, cfg.data_dir)
    trainer = Trainer(cfg, data, args.out, progress=not args.no_progress)
    if args.resume:
        trainer.resume()
    summary = trainer.fit()
    print(f"test_accuracy={summary['test_accuracy']:.4f} "
          f"best_test_accuracy={summary['best_test_accuracy']:.4f} "
          f"train_time_s={summary['train_time_s']:.1f}")
    return 0


def cmd_gradcheck(args) -> int:
    from .data import load_dataset
    from .gradcheck import compare_ep_bptt
    from .network import EPNetwork
    from .neurons import Neuron

    data = load_dataset("digits")
    if args.widths[0] != data.input_shape[0]:
        raise ConfigError(f"--widths must start with the input size {data.input_shape[0]}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = EPNetwork.fc(args.widths, data.n_classes, args.n_perclass,
                           Neuron(args.kappa, "rate"), args.lam, args.init_scale)
    rows = compare_ep_bptt(net, data.x_train[:args.batch], data.y_train[:args.batch],
                           args.beta, args.T, args.T, args.estimator)
    print(f"{'parameter':<26}{'cosine':>10}{'norm_ratio':>12}")
    for r in rows:
        print(f"{r['param']:<26}{r['cosine']:>10.5f}{r['norm_ratio']:>12.4f}")
    cmin = min(r["cosine"] for r in rows)
    print(f"cosine_min={cmin:.6f}")
    return 0 if cmin >= args.threshold else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stochep", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    _add_train(sub)
    _add_gradcheck(sub)
    handlers = {"train": cmd_train, "gradcheck": cmd_gradcheck}
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in handlers and argv[0] not in ("-h", "--help")):
        argv = ["train"] + argv  # plain `stochep` runs the default job
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except USER_ERRORS as e:
        print(f"stochep {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"stochep {args.command}: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the last finished epoch is in checkpoint_last.pt", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
