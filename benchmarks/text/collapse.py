"""Probe an IMDB run during training: why validation falls while training accuracy rises.

Trains the ``imdb-1ha1fc`` preset (with ``--set`` overrides) exactly as the Trainer does (same
streams, rule, optimizer, per-epoch scheduler), and every ``--probe-every`` batches measures on
the first ``--probe-n`` validation reviews:

- ``acc``: the Trainer's evaluation (stochastic free phase, final state; the weight average when
  ``ema_decay`` is set) and ``acc_raw`` (raw weights, when there is an average);
- ``acc_avg20``: the same read from the output state averaged over the last 20 steps;
- ``acc_mf``: the mean-field (rate) free phase of the same weights: no spike noise at all;
- ``pos_frac``: fraction predicted positive (the validation set is ~50/50), and the class-score
  margin ``mean |s_pos - s_neg|`` with its mean signed value ``margin_signed`` (a drift of the
  decision threshold shows as a large ``|margin_signed|`` and a ``pos_frac`` far from 0.5);
- ``train_acc_window``: training accuracy over the batches since the last probe;
- weight norms, the output biases' mean per class, hidden/output firing rates;
- at each epoch end (``--grad``), the mean-field EP estimate's cosine against BPTT on 32
  training reviews (``diagnostics.gradient_report``).

At the end it scores the full validation split and (``--test``) the full test set, and writes
``benchmarks/results/imdb_collapse<tag>.json``.

    python benchmarks/text/collapse.py --set lr=1e-3 --set epochs=2 --tag=-lr1e-3
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from stochep.engine.rng import SpikeRNG
from stochep.rules import EP
from stochep.tools.diagnose import gradient_report, mean_field_copy
from stochep.tools.results import data_dir, write_json
from stochep.training.activity import layer_activity
from stochep.training.presets import load_preset
from stochep.training.trainer import EVAL_SEED_OFFSET, Trainer


@torch.no_grad()
def scores(tr, net, x, average=1, batch=500):
    rng = SpikeRNG(tr.cfg.seed + EVAL_SEED_OFFSET, tr.device)
    out = []
    for i in range(0, len(x), batch):
        st = tr.rule.infer(net, tr.inputs(x[i:i + batch]), tr.dynamics, tr.cfg.T_free, rng,
                           average=average)
        out.append(net.class_scores(st[-1]))
    return torch.cat(out)


def summarise(s, y):
    d = s[:, 1] - s[:, 0]
    pred = s.argmax(1)
    return {"acc": (pred == y).float().mean().item(), "pos_frac": pred.float().mean().item(),
            "margin": d.abs().mean().item(), "margin_signed": d.mean().item(),
            "score_mean": s.mean().item()}


def probe(tr, xv, yv, window, grad=False, xg=None, yg=None):
    net, row = tr.net, {}
    if tr.ema is not None:
        raw = summarise(scores(tr, net, xv), yv)
        row["acc_raw"], row["pos_frac_raw"] = raw["acc"], raw["pos_frac"]
        ctx = tr.ema.applied(net)
    else:
        ctx = _null()
    with ctx:
        row.update(summarise(scores(tr, net, xv), yv))
        row["acc_avg20"] = summarise(scores(tr, net, xv, average=20), yv)["acc"]
        st = tr.rule.infer(net, tr.inputs(xv[:200]), tr.dynamics, tr.cfg.T_free,
                           SpikeRNG(tr.cfg.seed + EVAL_SEED_OFFSET, tr.device))
        act = layer_activity(net, st)  # free-phase rate and fractions at the box's ends
        row["hidden_at_low"], row["hidden_at_high"] = act[0]["at_low"], act[0]["at_high"]
        mf = mean_field_copy(net, torch.float32)
        smf = scores(tr, mf, xv)
        row["acc_mf"] = summarise(smf, yv)["acc"]
        row["pos_frac_mf"] = summarise(smf, yv)["pos_frac"]
        for n, p in net.named_parameters():
            row[f"norm_{n}"] = p.norm().item()
        b = net.interactions[-1].bias.detach().view(net.n_classes, net.n_perclass).mean(1)
        row["out_bias_per_class"] = b.tolist()
        if grad:
            rep = gradient_report(net, xg, yg, EP.from_config(tr.cfg), seeds=2)
            row["grad"] = rep["layers"]
            row["cosine_min_vs_bptt"] = rep["cosine_min_vs_bptt"]
    row["train_acc_window"] = window
    return row


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="imdb-1ha1fc")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--probe-every", type=int, default=150)
    p.add_argument("--probe-n", type=int, default=1000)
    p.add_argument("--grad", action="store_true")
    p.add_argument("--test", action="store_true")
    p.add_argument("--minutes", type=float, default=1e9, help="training-time budget")
    p.add_argument("--tag", default="")
    p.add_argument("--log", help="jsonl of the probes, written as they come")
    args = p.parse_args(argv)
    cfg = load_preset(args.model)
    cfg.data_dir = data_dir(cfg.dataset)
    cfg.apply_overrides(args.set).validate()
    data = cfg.load_data()
    if args.train_subset:
        data.x_train = data.x_train[:args.train_subset]
        data.y_train = data.y_train[:args.train_subset]
    t_build = time.perf_counter()
    tr = Trainer(cfg, data, None, progress=False)
    build_s = time.perf_counter() - t_build
    xv, yv = tr.val[0][:args.probe_n], tr.val[1][:args.probe_n]
    xg, yg = tr.network_inputs(32), tr.data.y_train[:32]
    probes, train_time = [], 0.0
    log = open(args.log, "a") if args.log else None

    def record(epoch, batch, window, grad=False):
        row = {"epoch": epoch, "batch": batch, "lr": tr.opt.param_groups[0]["lr"],
               "train_time_s": train_time,
               **probe(tr, xv, yv, window, grad, xg, yg)}
        probes.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in row.items() if k != "grad"}), flush=True)
        if log:
            log.write(json.dumps(row) + "\n")
            log.flush()

    record(0, 0, None, args.grad)
    epoch_rows = []
    for epoch in range(cfg.epochs):
        x_all, y_all = tr.data.x_train, tr.data.y_train
        order = torch.randperm(len(y_all), generator=tr.streams.data)
        nb = math.ceil(len(order) / cfg.batch_size)
        corr = seen = ecorr = eseen = 0
        t0 = time.perf_counter()
        for b in range(nb):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            c, n = (tr.train_step(x_all[idx], y_all[idx], index=idx, batch=b)[k]
                    for k in ("correct", "n"))
            corr, seen, ecorr, eseen = corr + c, seen + n, ecorr + c, eseen + n
            if (b + 1) % args.probe_every == 0 or b + 1 == nb:
                train_time += time.perf_counter() - t0
                record(epoch + 1, b + 1, corr / seen, args.grad and b + 1 == nb)
                corr = seen = 0
                t0 = time.perf_counter()
        tr.sched.step()
        tr.epoch += 1
        val = tr.evaluate(*tr.val)
        epoch_rows.append({"epoch": epoch + 1, "train_acc": ecorr / eseen, "val_acc": val,
                           "train_time_s": train_time})
        print(json.dumps(epoch_rows[-1]), flush=True)
        if train_time / (epoch + 1) * (epoch + 2) > args.minutes * 60:
            break
    test = tr.evaluate(tr.data.x_test, tr.data.y_test) if args.test else None
    write_json(f"imdb_collapse{args.tag}.json", {
        "model": args.model, "overrides": args.set, "config": cfg.to_dict(),
        "train_subset": args.train_subset or len(data.y_train), "probe_n": len(yv),
        "probe_pos_frac_true": yv.float().mean().item(),
        "build_s": build_s, "epochs": epoch_rows, "final_test_acc": test,
        "train_minutes": train_time / 60, "probes": probes})
    return 0


if __name__ == "__main__":
    sys.exit(main())
