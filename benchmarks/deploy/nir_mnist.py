"""A trained checkpoint exported to NIR and run outside stochep: accuracies and agreement.

For one checkpoint: stochep's own test accuracy in mean field and with its stochastic spikes
(the run's free phase, ``net(x)``), then the exported graph run by snnTorch's NIR importer and by
the reference executor (tools/nir/execute.py, with NIR's reset and with reset by subtraction),
each with its accuracy and the share of test images whose prediction agrees with stochep's
mean-field and stochastic predictions. The ``li-if`` encoding is tried in snnTorch too; where
the importer refuses it, its exact error is recorded.

    OMP_NUM_THREADS=1 python benchmarks/deploy/nir_mnist.py --checkpoint RUN/checkpoint_best.pt \
        --data-dir DIR --name mnist-1fc
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from stochep.data import load_dataset
from stochep.tools.nir import NIRExportError, export_nir, load_nir
from stochep.tools.nir.graph import read_graph
from stochep.tools.nir.measure import graph_scores, stochep_scores
from stochep.tools.results import write_json
from stochep.training.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data-dir")
    ap.add_argument("--name", required=True, help="result file nir_<name>.json")
    ap.add_argument("--test-subset", type=int, default=0, help="first N test images (0: all)")
    ap.add_argument("--runners", default="snntorch,reference,reference-subtract")
    ap.add_argument("--encodings", default="cubalif,li-if", help="neuron encodings to export")
    ap.add_argument("--threshold-scale", type=float, default=0.0,
                    help="also export CubaLIF with this threshold factor (0: not)")
    args = ap.parse_args()
    tr = Trainer.from_checkpoint(args.checkpoint, score_only=True)
    net, cfg = tr.net, tr.cfg
    data = load_dataset(cfg.dataset, args.data_dir)
    x, y = data.x_test, data.y_test
    if args.test_subset:
        x, y = x[:args.test_subset], y[:args.test_subset]
    x = x.float().reshape(len(x), -1)
    rows = {}
    t = time.time()
    mf = stochep_scores(net, x).argmax(1)
    rows["stochep mean field"] = {"accuracy": (mf == y).float().mean().item(),
                                  "seconds": time.time() - t}
    t = time.time()
    st = stochep_scores(net, x, mean_field=False).argmax(1)
    rows["stochep stochastic"] = {"accuracy": (st == y).float().mean().item(),
                                  "agree_mean_field": (st == mf).float().mean().item(),
                                  "seconds": time.time() - t}
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {}
        for enc in ["cubalif"] + [e for e in args.encodings.split(",") if e != "cubalif"]:
            path = os.path.join(tmp, f"{enc}.nir")
            export_nir(net, path, neuron=enc)
            graphs[enc] = read_graph(path)
            if enc == "cubalif":
                back = load_nir(path)
                same_w = all(torch.equal(a, b) for a, b in
                             zip(net.state_dict().values(), back.state_dict().values()))
                same_mf = torch.equal(stochep_scores(back, x[:1000]), stochep_scores(net, x[:1000]))
                rows["round trip"] = {"identical_weights": same_w,
                                      "identical_mean_field_scores_first_1000": same_mf}
        if args.threshold_scale:
            key = f"cubalif-threshold-{args.threshold_scale:g}"
            export_nir(net, os.path.join(tmp, "t.nir"), threshold_scale=args.threshold_scale)
            graphs[key] = read_graph(os.path.join(tmp, "t.nir"))
    info = graphs["cubalif"].metadata
    for enc, graph in graphs.items():
        runners = args.runners.split(",")
        if enc.startswith("cubalif-threshold"):  # NIR's reset: the runners that use it
            runners = [r for r in runners if r != "reference-subtract"]
        for runner in runners:
            key = f"{enc} / {runner}"
            t = time.time()
            try:
                p = graph_scores(graph, x, runner).argmax(1)
            except NIRExportError as e:
                rows[key] = {"error": str(e)}
                print(key, "error:", e)
                continue
            rows[key] = {"accuracy": (p == y).float().mean().item(),
                         "agree_mean_field": (p == mf).float().mean().item(),
                         "agree_stochastic": (p == st).float().mean().item(),
                         "seconds": time.time() - t}
            print(key, rows[key])
    for k, v in rows.items():
        print(k, v)
    write_json(f"nir_{args.name}.json", {
        "checkpoint": args.checkpoint, "epoch": tr.epoch,
        "n_test": len(y), "T_free": int(info["stochep_T_free"]),
        "spike_window": int(info["stochep_spike_window"]),
        "readout_average": int(info["stochep_readout_average"]),
        "update": str(info["stochep_update"]), "results": rows})


if __name__ == "__main__":
    main()
