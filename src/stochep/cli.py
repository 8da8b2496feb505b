"""stochep: train and measure spiking networks with stochastic Equilibrium Propagation.

Commands: train, eval, export, plot, presets, gradcheck, diagnose, memory, energy, analyze,
faults, sweep, reproduce, convert-checkpoint (``stochep COMMAND --help``).

Errors the user can fix (unknown preset or key, wrong type, malformed YAML, missing data, an
unavailable device, a damaged, unsafe or outdated checkpoint, invalid values) print one line on
stderr and exit with code 2; a diverged run exits with 1 and keeps its last good checkpoint.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

from stochep.plugins import PluginError, load_installed, load_plugins, split_plugin_args
from stochep.rules import RULES, TrainingDiverged
from stochep.training.checkpoint import CheckpointError, convert_checkpoint, load_checkpoint
from stochep.training.config import Config, ConfigError, check_device, load_yaml
from stochep.training.rundir import RunDirectoryError

from .data import DataError
from .validation import check_int_at_least

USER_ERRORS = (ConfigError, DataError, CheckpointError, ValueError, RunDirectoryError)


def _add_train(sub):
    p = sub.add_parser("train", help="train a network with stochastic EP")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="a Table 3 preset (see `stochep presets`)")
    src.add_argument("--config", help="YAML file of config keys")
    p.add_argument("--algo", choices=RULES.names(),
                   help="learning rule: ep (default), bptt (surrogate-gradient BPTT, same "
                   "network), or another registered rule")
    p.add_argument("--dataset")
    p.add_argument("--data-dir")
    p.add_argument("--download", action="store_true", help="fetch missing dataset files")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--train-subset", type=int, metavar="N",
                   help="train on the first N training samples (a short run on any dataset)")
    p.add_argument("--eval-subset", type=int, metavar="N",
                   help="score only the first N validation and test samples each epoch")
    p.add_argument("--val-fraction", type=float, metavar="F",
                   help="hold out this fraction of the training samples for validation")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the config's, cpu)")
    p.add_argument("--out", help="run directory (default: runs/<name>-s<seed>-<time>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from checkpoint_last.pt; with --epochs N "
                   "beyond its end it trains on to N (a cosine schedule becomes the N-epoch one)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--log", action="append", default=[], choices=("tensorboard",),
                   help="also log to TensorBoard, under RUNDIR/tensorboard (needs the "
                   "[tensorboard] extra)")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes on this machine (torchrun underneath; "
                   "docs/scale-out.md)")


def _add_sweep(sub):
    p = sub.add_parser("sweep", help="train independent seeds; mean and std of the accuracy")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset")
    src.add_argument("--config")
    p.add_argument("--dataset")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--algo", choices=RULES.names())
    p.add_argument("--seeds", required=True, help="e.g. 0-4 or 1,3,7")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained at the same time")
    p.add_argument("--out", help="sweep directory (default: runs/sweep-<name>)")


def _add_reproduce(sub):
    from stochep.tools.reproduce import BUDGETS, TABLES

    p = sub.add_parser("reproduce", help="run or collect one paper table; Markdown report")
    p.add_argument("table", choices=list(TABLES))
    p.add_argument("--budget", choices=BUDGETS, default="cpu-small")
    p.add_argument("--out", default="reproduce", help="folder of runs and reports")
    p.add_argument("--data-root", help="folder holding mnist/, cifar10/, imdb/, dvsgesture/ "
                   "(default: each preset's default data location)")
    p.add_argument("--jobs", type=int, default=2, help="rows run at the same time")


def _add_eval(sub):
    p = sub.add_parser("eval", help="test accuracy of a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", help="score on this registered dataset's test set instead of "
                   "the run's own (same input shape); needed for a run on your own tensors")
    p.add_argument("--data-dir")
    p.add_argument("--json", help="where to write the result (default: next to the checkpoint)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change how it is scored, e.g. readout_average=20")


def _add_export(sub):
    p = sub.add_parser("export", help="write a checkpoint's free phase as a NIR graph "
                       "(docs/deploy.md)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", choices=["nir"], default="nir")
    p.add_argument("--out", required=True, help="the file to write (HDF5, e.g. model.nir)")
    p.add_argument("--neuron", choices=["cubalif", "li-if"], default="cubalif",
                   help="cubalif: one CubaLIF node per layer (runs in snnTorch); li-if: "
                   "LI -> Scale -> IF")
    p.add_argument("--spike-window", type=int,
                   help="output steps a simulator counts spikes over (default half of T_free)")
    p.add_argument("--threshold-scale", type=float, default=1.0,
                   help="integrate-and-fire threshold factor (0.9 makes up for the reset to "
                   "zero; docs/deploy.md)")


def _add_plot(sub):
    p = sub.add_parser("plot", help="training curves of run directories as a PNG (loss, "
                       "accuracies, firing rates, learning rate)")
    p.add_argument("runs", nargs="+", metavar="RUNDIR", help="run directories, drawn side by side")
    p.add_argument("--out", default="curves.png", help="the PNG to write (default curves.png)")


def _add_gradcheck(sub):
    p = sub.add_parser("gradcheck", help="compare EP and BPTT gradients (mean field, float64)")
    p.add_argument("--widths", type=int, nargs="+", default=[64, 64, 64],
                   help="input and hidden widths (the input must be 64 for digits)")
    p.add_argument("--preset", help="check this preset's architecture on its dataset instead")
    p.add_argument("--narrow", type=int, default=1,
                   help="with --preset: divide every width and channel count by this")
    p.add_argument("--data-dir", help="with --preset: the dataset's directory")
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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="build the network from the digits default (or --preset) with these "
                   "config overrides: any registered neuron, layer or cost; --set algo=NAME "
                   "checks that rule against BPTT instead of EP")


def _add_memory(sub):
    p = sub.add_parser("memory", help="peak memory of one training step, EP vs BPTT (Table 2)")
    p.add_argument("--preset", help="a preset (see `stochep presets`)")
    p.add_argument("--algo", choices=RULES.names(),
                   help="measure one rule (default: ep and bptt)")
    p.add_argument("--batch-size", type=int,
                   help="default 128; --table: 128, or 64 for imdb presets")
    p.add_argument("--T-free", type=int, dest="T_free", help="override the preset's T_free")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--table", action="store_true", help="every preset, in Table 2's layout")
    mode.add_argument("--sweep-T", type=int, nargs="+", metavar="T",
                      help="memory against T_free for --preset, e.g. 10 20 50 100")
    p.add_argument("--plot", default="memory_sweep.png", help="PNG of --sweep-T ([plot] extra)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--json", help="write the result as JSON to this file ('-': stdout)")


def _add_energy(sub):
    p = sub.add_parser("energy", help="MAC/AC counts and energy vs full precision (sec. 5.1)")
    p.add_argument("--preset", help="a preset (see `stochep presets`)")
    p.add_argument("--checkpoint", help="use trained weights (and the config) of this checkpoint")
    p.add_argument("--data-dir")
    p.add_argument("--rates", type=float, nargs="+", metavar="IFR",
                   help="firing rate of each hidden and output layer instead of measuring")
    p.add_argument("--samples", type=int, default=128, help="test samples for the rates")
    p.add_argument("--snn-outputs", type=int, default=700,
                   help="readout neurons of the spiking model (paper's worst case: 700)")
    p.add_argument("--fp-outputs", type=int, default=10,
                   help="readout neurons of the full-precision model")
    p.add_argument("--json", help="write the report as JSON to this file ('-': stdout)")


def _add_diagnose(sub):
    p = sub.add_parser("diagnose", help="per-layer firing rates and EP gradient quality")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="the preset's network at initialisation "
                     "(default: the embedded digits job)")
    src.add_argument("--checkpoint", help="a trained network")
    p.add_argument("--data-dir")
    p.add_argument("--batch", type=int, default=64, help="training images in the batch")
    p.add_argument("--seeds", type=int, default=4, help="spike seeds for the noise measures")
    p.add_argument("--T-bptt", type=int, dest="T_bptt",
                   help="mean-field BPTT steps (default: the preset's T_free)")
    p.add_argument("--float32", action="store_true",
                   help="run the mean-field references in float32 (faster on wide conv nets)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--json", help="write the report as JSON to this file ('-': stdout)")


def _add_analyze(sub):
    p = sub.add_parser("analyze", help="the paper's figures 3-6: stability, firing, "
                       "error-signal, mean-field (JSON, and PNG with stochep[plot])")
    p.add_argument("name", choices=("stability", "firing", "error-signal", "mean-field"))
    p.add_argument("--preset", help="network and data (default: the embedded digits job; "
                   "error-signal's figures use cifar10-5c)")
    p.add_argument("--data-dir")
    p.add_argument("--out", default="analysis", help="output folder (default: analysis)")
    p.add_argument("--epochs", type=int, default=1,
                   help="training epochs of the networks stability and firing train (default 1)")
    p.add_argument("--train-subset", type=int, default=0,
                   help="train on the first N training images (default: all)")
    p.add_argument("--samples", type=int, default=None,
                   help="test samples analysed (default: 100; error-signal 128; mean-field 16)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")


def _add_faults(sub):
    p = sub.add_parser("faults", help="test accuracy of a checkpoint under device faults: dead "
                       "and stuck neurons, dropped spikes, weight variation (JSON and PNG)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--sweep", action="append", default=[], metavar="KIND=L1,L2,...",
                   help="one fault kind (dead, stuck, drop, variation) at these levels "
                   "(repeatable; default: every kind at four levels)")
    p.add_argument("--point", action="append", default=[], metavar="KIND=L[,KIND=L...]",
                   help="several kinds at once, e.g. dead=0.1,drop=0.2 (repeatable)")
    p.add_argument("--seeds", type=int, default=1,
                   help="fault draws per level (which neurons fail), averaged")
    p.add_argument("--layers", default="hidden", choices=("hidden", "all"),
                   help="the layers a fault level applies to (default: the hidden layers)")
    p.add_argument("--eval-subset", type=int, default=0, metavar="N",
                   help="score the first N test samples only (0: all)")
    p.add_argument("--data-dir")
    p.add_argument("--out", required=True, help="folder for faults.json and faults.png")


def _add_convert(sub):
    p = sub.add_parser("convert-checkpoint",
                       help="rewrite a checkpoint of an earlier version in the current format")
    p.add_argument("old", help="the old checkpoint (it is unpickled: only files you trust)")
    p.add_argument("new", help="where to write the converted checkpoint")
    p.add_argument("--trust", action="store_true",
                   help="required: confirm OLD comes from a source you trust")


def build_config(args) -> Config:
    """Preset or YAML file, then the explicit flags, then ``--set`` overrides."""
    from stochep.training.presets import load_preset

    if args.preset:
        cfg = load_preset(args.preset)
    elif args.config:
        cfg = Config.from_dict(load_yaml(args.config))
    else:
        cfg = Config()
    for key, val in (("algo", args.algo), ("dataset", args.dataset), ("data_dir", args.data_dir),
                     ("epochs", args.epochs), ("batch_size", args.batch_size),
                     ("seed", getattr(args, "seed", None)),
                     ("train_subset", getattr(args, "train_subset", None)),
                     ("eval_subset", getattr(args, "eval_subset", None)),
                     ("val_fraction", getattr(args, "val_fraction", None)),
                     ("device", getattr(args, "device", None))):
        if val is not None:
            cfg.set(key, val)
    plugins = [os.path.abspath(p) if p.endswith(".py") else p
               for p in getattr(args, "plugins", [])]
    if plugins:  # recorded, so that --resume, eval and the --nproc workers import them again
        cfg.plugins = list(dict.fromkeys(cfg.plugins + plugins))
    return cfg.apply_overrides(args.set).validate()


def _run_dir(args, cfg: Config) -> str:
    if args.out:
        return args.out
    name = cfg.preset or cfg.dataset
    return os.path.join("runs", f"{name}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")


def _lock(out: str, held: contextlib.ExitStack):
    """Rank 0 takes the run directory's lock (:mod:`stochep.training.rundir`) before it reads
    or checks the checkpoint there, so a second process stops with one line before it reads a
    state that the first may still change, or trains over a run that ended meanwhile."""
    from stochep.training.distributed import DataParallel
    from stochep.training.rundir import RunLock

    return held.enter_context(RunLock(out)) if DataParallel().main else None


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _launch(args) -> int:
    """``stochep train --nproc K``: the same command under torchrun, K processes, one run
    directory chosen here (every rank must write to the same one)."""
    import subprocess

    argv, skip = [], False
    for a in args.argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    if not args.out:
        args.out = _run_dir(args, build_config(args))
        argv += ["--out", args.out]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={args.nproc}", "-m", "stochep", *argv]
    print(f"launching {args.nproc} processes: run directory {args.out}", file=sys.stderr)
    code = subprocess.run(cmd).returncode
    if code != 0 and _finished(args.out):
        # gloo can abort a worker in its destructor while the group closes (distributed.py,
        # DataParallel.close): the run itself finished and saved its last epoch
        print(f"stochep train: a worker ended abnormally while the processes were closing, "
              f"after the run had finished; the run in {args.out} is complete", file=sys.stderr)
        return 0
    return code


def _finished(out: str) -> bool:
    """Whether the run in ``out`` has trained and saved every epoch its config plans."""
    try:
        with open(os.path.join(out, "summary.json")) as f:
            done = json.load(f)["epochs"]
        planned = Config.from_dict(load_yaml(os.path.join(out, "config.yaml"))).epochs
    except (OSError, ValueError, KeyError):
        return False
    return done >= planned and os.path.exists(os.path.join(out, "checkpoint_last.pt"))


def _join_group(args) -> None:
    """Under torchrun (WORLD_SIZE > 1): join the process group, gloo or NCCL by the device."""
    from stochep.training.distributed import init_from_env

    if not args.out:
        raise ConfigError("data-parallel training needs --out RUNDIR (one run directory for "
                          "every rank)")
    saved = os.path.join(args.out, "config.yaml")
    if args.resume and os.path.exists(saved):
        device = Config.from_dict(load_yaml(saved)).resolved().device
    else:
        device = build_config(args).resolved().device
    init_from_env(device)


def cmd_train(args) -> int:
    check_int_at_least("--nproc", args.nproc, 1)
    if args.nproc > 1 and _world_size() == 1:
        return _launch(args)
    if _world_size() > 1:
        _join_group(args)
    with contextlib.ExitStack() as held:  # the run directory's lock, released however it ends
        trainer, out = (_resume_run if args.resume else _new_run)(args, held)
        if trainer.dp.main:
            print(f"run directory: {out}", file=sys.stderr)
        summary = trainer.fit(callbacks=_loggers(args, out))
    trainer.dp.close()  # not on an error: a barrier there could wait for a rank that died
    if not trainer.dp.main:  # rank 0 reports for the group
        return 0
    print(f"test_accuracy={_fmt(summary['test_accuracy'])} "
          f"best_val_accuracy={_fmt(summary['best_val_accuracy'])} "
          f"test_accuracy_at_best_val={_fmt(summary['test_accuracy_at_best_val'])} "
          f"train_time_s={summary['train_time_s']:.1f}")
    return 0


def _loggers(args, out: str) -> list:
    """The callbacks ``--log`` asks for (``training.callbacks``)."""
    from stochep.training.callbacks import TensorBoard

    return [TensorBoard(os.path.join(out, "tensorboard")) for kind in args.log
            if kind == "tensorboard"]


def _resume_run(args, held: contextlib.ExitStack):
    """The trainer of ``--resume --out RUNDIR``, read under the directory's lock."""
    from stochep.training.trainer import Trainer

    if not args.out:
        raise ConfigError("--resume needs --out RUNDIR")
    overrides = [f"device={args.device}"] if args.device else []
    lock = _lock(args.out, held) if os.path.isdir(args.out) else None
    trainer = Trainer.from_run(args.out, epochs=args.epochs, data_dir=args.data_dir,
                               overrides=overrides, progress=not args.no_progress, run_lock=lock)
    if trainer.epoch >= trainer.cfg.epochs:
        print(f"stochep train: the run in {args.out} has finished its {trainer.epoch} epochs; "
              f"pass --epochs N > {trainer.epoch} to train on", file=sys.stderr)
    return trainer, args.out


def _new_run(args, held: contextlib.ExitStack):
    """The trainer of a new run, in a run directory that holds none yet."""
    from stochep.training.trainer import Trainer

    cfg = build_config(args)
    check_device(cfg.resolved().device)
    out = _run_dir(args, cfg)
    kw = {"download": True} if args.download else {}
    data = cfg.load_data(**kw)  # before the lock: bad data leaves no run directory behind
    lock = _lock(out, held)
    if os.path.exists(os.path.join(out, "checkpoint_last.pt")):
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it "
                          "or choose another --out")
    return Trainer(cfg, data, out, progress=not args.no_progress, run_lock=lock), out


def _fmt(acc: float | None) -> str:
    """An accuracy with 4 decimals; ``none`` where there is none (e.g. val_fraction=0)."""
    return "none" if acc is None else f"{acc:.4f}"


def cmd_sweep(args) -> int:
    from stochep.tools.sweep import parse_seeds, run_sweep

    check_int_at_least("--jobs", args.jobs, 1)
    seeds = parse_seeds(args.seeds)
    cfg = build_config(args)  # validates the config before any process starts
    out = args.out or os.path.join("runs", f"sweep-{cfg.preset or cfg.dataset}")
    train_args = []
    for flag, val in (("--preset", args.preset), ("--config", args.config), ("--algo", args.algo),
                      ("--dataset", args.dataset), ("--data-dir", args.data_dir),
                      ("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if val is not None:
            train_args += [flag, str(val)]
    for kv in args.set:
        train_args += ["--set", kv]
    for p in args.plugins:  # the workers import them too
        train_args += ["--plugin", os.path.abspath(p) if p.endswith(".py") else p]
    res = run_sweep(out, seeds, train_args, args.jobs, args.epochs,
                    log=lambda m: print(m, file=sys.stderr))
    mean, std = res["test_accuracy_at_best_val_mean"], res["test_accuracy_at_best_val_std"]
    print(f"seeds={res['n_finished']}/{len(seeds)} test_accuracy_at_best_val_mean={_fmt(mean)} "
          f"std={_fmt(std)} ({os.path.join(out, 'sweep.json')})")
    return 1 if res["failed_seeds"] else 0


def cmd_reproduce(args) -> int:
    from stochep.tools.reproduce import reproduce

    check_int_at_least("--jobs", args.jobs, 1)
    path = reproduce(args.table, args.budget, args.out, args.data_root, args.jobs,
                     log=lambda m: print(m, file=sys.stderr))
    print(open(path).read())
    print(f"wrote {path}")
    return 0


def cmd_convert(args) -> int:
    convert_checkpoint(args.old, args.new, trust=args.trust)
    print(f"wrote {args.new}")
    return 0


def cmd_eval(args) -> int:
    from stochep.data import load_dataset
    from stochep.training.trainer import Trainer

    trainer = Trainer.from_checkpoint(args.checkpoint, overrides=args.set,
                                      data_dir=None if args.dataset else args.data_dir,
                                      score_only=bool(args.dataset))
    cfg = trainer.cfg
    if args.dataset:
        data = load_dataset(args.dataset, args.data_dir)
    elif trainer.eval_only:
        raise ConfigError(
            f"{args.checkpoint} was trained on your own dataset {cfg.dataset!r} (inputs "
            f"{list(trainer.data.input_shape)}, {trainer.data.n_classes} classes); score it on a "
            "registered dataset of that shape with --dataset NAME [--data-dir DIR], or in "
            "Python: Trainer.from_checkpoint(path).evaluate(x, y)")
    else:
        data = trainer.data
    acc = trainer.evaluate(data.x_test, data.y_test)
    result = {"checkpoint": os.path.abspath(args.checkpoint), "epoch": trainer.epoch,
              "dataset": args.dataset or cfg.dataset, "test_accuracy": acc,
              "n_test": len(data.y_test), "overrides": args.set}
    path = args.json or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)),
                                     "eval.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"test_accuracy={acc:.4f}")
    return 0


def cmd_export(args) -> int:
    from stochep.tools.nir.graph import export_checkpoint

    export_checkpoint(args.checkpoint, args.out, neuron=args.neuron,
                      spike_window=args.spike_window, threshold_scale=args.threshold_scale)
    print(f"wrote {args.out}")
    return 0


def cmd_plot(args) -> int:
    from stochep.tools.plot import curves_table, plot_runs, read_history, say_no_matplotlib

    for d in args.runs:
        read_history(d)  # a folder without metrics is one line
    if plot_runs(args.runs, args.out):
        print(f"wrote {args.out}")
        return 0
    print(curves_table({d: read_history(d) for d in args.runs}))
    say_no_matplotlib(args.out + " (the curves are printed above)")
    return 2


def cmd_presets(args) -> int:
    from stochep.training.presets import presets_table

    print(presets_table())
    return 0


def cmd_gradcheck(args) -> int:
    from stochep.tools.gradcheck import compare_ep_bptt, digits_network, preset_network

    rule = None
    if args.preset or args.set:
        if args.narrow < 1:
            raise ConfigError(f"--narrow must be an integer >= 1, got {args.narrow}")
        net, data, cfg = preset_network(args.preset, args.narrow, args.n_perclass, args.seed,
                                        args.data_dir, args.set)
        if cfg.algo != "ep":  # another rule's gradient against BPTT's
            from stochep.engine.rng import Streams

            cfg.set("T_free", args.T)
            from stochep.training.build import build_rule

            rule = build_rule(cfg, Streams(args.seed))
    else:
        net, data = digits_network(args.widths, args.n_perclass, args.kappa, args.lam,
                                   args.init_scale, args.seed)
    x = data.x_train[:args.batch].reshape(args.batch, *net.input_shape)
    rows = compare_ep_bptt(net, x, data.y_train[:args.batch], args.beta, args.T, args.T,
                           args.estimator, rule)
    print(f"{'parameter':<26}{'cosine':>10}{'norm_ratio':>12}")
    for r in rows:
        print(f"{r['param']:<26}{r['cosine']:>10.5f}{r['norm_ratio']:>12.4f}")
    cmin = min(r["cosine"] for r in rows)
    print(f"cosine_min={cmin:.6f}")
    return 0 if cmin >= args.threshold else 1


def _write_json(path, obj) -> None:
    if path == "-":
        print(json.dumps(obj, indent=2))
        return
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def cmd_memory(args) -> int:
    from stochep.tools.memory_report import run_command

    check_device(args.device)
    res, text = run_command(args.preset, args.algo, args.batch_size, args.T_free, args.table,
                            args.sweep_T, args.plot, args.device, args.set)
    if args.json:
        _write_json(args.json, res)
    if args.json != "-":
        print(text)
    return 0


def cmd_energy(args) -> int:
    from stochep.tools.energy import format_report, run_energy
    from stochep.training.presets import load_preset

    ckpt = None
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        cfg = Config.from_dict(ckpt["config"])
        if args.preset and cfg.preset not in (None, args.preset):
            raise ConfigError(f"--preset {args.preset} does not match the checkpoint's preset "
                              f"{cfg.preset}; drop --preset")
    elif args.preset:
        cfg = load_preset(args.preset)
    else:
        raise ConfigError("--preset or --checkpoint is required")
    rep = run_energy(cfg.validate(), ckpt, args.data_dir, args.rates, args.samples,
                     args.snn_outputs, args.fp_outputs)
    if args.checkpoint:
        rep["checkpoint"] = os.path.abspath(args.checkpoint)
    if args.json:
        _write_json(args.json, rep)
    if args.json != "-":
        print(f"{cfg.preset or cfg.dataset}: firing rates {rep['rates_source']}")
        print(format_report(rep))
    return 0


def cmd_diagnose(args) -> int:
    import torch

    from stochep.engine.dynamics import Dynamics
    from stochep.rules.ep import EP
    from stochep.tools.diagnose import diagnose, format_report
    from stochep.training.presets import load_preset
    from stochep.training.trainer import Trainer

    check_int_at_least("--batch", args.batch, 1)
    check_int_at_least("--seeds", args.seeds, 2)
    if args.checkpoint:
        trainer = Trainer.from_checkpoint(args.checkpoint, data_dir=args.data_dir,
                                          overrides=args.set)
    else:
        cfg = load_preset(args.preset) if args.preset else Config()
        if args.data_dir:
            cfg.data_dir = args.data_dir
        cfg.apply_overrides(args.set).validate()
        trainer = Trainer(cfg, cfg.load_data(), progress=False)
    c = trainer.cfg
    x = trainer.network_inputs(args.batch)
    dynamics = Dynamics.from_config(c)
    rep = diagnose(trainer.net, x, trainer.data.y_train[:args.batch].to(x.device),
                   EP.from_config(c),
                   args.seeds, args.T_bptt, torch.float32 if args.float32 else torch.float64,
                   dynamics)
    rep.update(preset=c.preset, checkpoint=args.checkpoint, batch=args.batch,
               seeds=args.seeds, beta=c.beta, estimator=c.estimator, update=c.update,
               T_free=c.T_free, T_nudge=c.T_nudge)
    if args.json:
        _write_json(args.json, rep)
    if args.json != "-":
        print(format_report(rep))
    return 0


DEFAULT_SAMPLES = {"stability": 100, "firing": 100, "error-signal": 128, "mean-field": 16}


def cmd_faults(args) -> int:
    from stochep.tools.faults import run_command

    _, text = run_command(args)
    print(text)
    return 0


def cmd_analyze(args) -> int:
    from stochep.tools.analysis import ANALYSES, Setup

    samples = DEFAULT_SAMPLES[args.name] if args.samples is None else args.samples
    check_int_at_least("--samples", samples, 1)
    check_int_at_least("--epochs", args.epochs, 1)
    check_int_at_least("--train-subset", args.train_subset, 0)
    setup = Setup.build(args.preset, args.data_dir, args.set, epochs=args.epochs,
                        train_subset=args.train_subset, samples=samples)
    result = ANALYSES[args.name](setup, args.out)
    summary = {k: v for k, v in result.items() if k not in ("steps", "files")}
    for key in ("models", "kappa", "n_perclass"):  # drop the bulky per-item arrays
        if key in summary:
            summary[key] = {k: {m: n for m, n in v.items() if m != "raster"}
                            for k, v in summary[key].items()}
    print(json.dumps(summary, indent=1))
    print("wrote " + ", ".join(result["files"]))
    return 0


HANDLERS = {"train": cmd_train, "eval": cmd_eval, "plot": cmd_plot, "presets": cmd_presets,
            "gradcheck": cmd_gradcheck, "memory": cmd_memory, "energy": cmd_energy,
            "convert-checkpoint": cmd_convert, "diagnose": cmd_diagnose,
            "analyze": cmd_analyze, "sweep": cmd_sweep, "reproduce": cmd_reproduce,
            "faults": cmd_faults, "export": cmd_export}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stochep", description=__doc__.split("\n\n")[0],
                                     epilog="Without a command, stochep runs `stochep train` on "
                                     "the embedded digits default. Parts from outside the "
                                     "package: --plugin MODULE (repeatable, before or after the "
                                     "command), $STOCHEP_PLUGINS or the stochep.plugins entry "
                                     "point group (docs/extending.md).")
    sub = parser.add_subparsers(dest="command")
    _add_train(sub)
    _add_eval(sub)
    _add_export(sub)
    _add_plot(sub)
    sub.add_parser("presets", help="print the Table 3 presets")
    _add_gradcheck(sub)
    _add_memory(sub)
    _add_energy(sub)
    _add_convert(sub)
    _add_diagnose(sub)
    _add_analyze(sub)
    _add_faults(sub)
    _add_sweep(sub)
    _add_reproduce(sub)
    return parser


def main(argv=None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    try:  # parts from outside the package register before the parser lists the choices
        plugins, argv = split_plugin_args(given)
        load_installed()
        load_plugins(plugins)
    except PluginError as e:
        print(f"stochep: error: {e}", file=sys.stderr)
        return 2
    parser = build_parser()
    if not argv or (argv[0] not in HANDLERS and argv[0] not in ("-h", "--help")):
        argv = ["train"] + argv  # plain `stochep` runs the default job
        given = ["train"] + given
    args = parser.parse_args(argv)
    args.plugins = plugins
    args.argv = given  # the command line as given (stochep train --nproc relaunches it)
    try:
        return HANDLERS[args.command](args)
    except USER_ERRORS as e:
        print(f"stochep {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"stochep {args.command}: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the last finished epoch is in checkpoint_last.pt", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
