"""stochep against the public EP peer in one process, interleaved: the training rate ratio on
a shared machine whose load comes and goes.

The peer (Laborieux-Axel/Equilibrium-Propagation, commit 93660ed) trains with its own
``model_utils.train()`` as ``peer_bench.py`` builds it (MLP from ``--archi``, batch 50, Adam 5e-4,
two-phase ``T1 + T2``); each stochep preset trains real :class:`Trainer` epochs (shuffling,
phases, contrast, optimizer; evaluation excluded). All train one epoch of the same first
``--samples`` MNIST training images in turn, ``--repeats`` times, and each keeps its fastest
epoch: a load change between two runs hits every entry of the next turn alike.

    PEER_DIR=DIR OMP_NUM_THREADS=1 python benchmarks/speed/peer_side_by_side.py \\
        --presets mnist-1fc mnist-1fc-fast [--archi 784 512 10 --T1 30 --T2 10] \\
        --samples 3200 --repeats 3 --json NAME.json
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

from stochep.tools.results import data_dir, print_table, write_json
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                    "peer", "shim")


def peer_epoch(archi, T1, T2, samples):
    """A function that trains one peer epoch on ``samples`` images and returns its time."""
    sys.path.insert(0, os.environ["PEER_DIR"])
    sys.path.insert(1, os.environ.get("PEER_SHIM", SHIM))
    import model_utils
    import torch
    import torchvision

    tf = torchvision.transforms
    transform = tf.Compose([tf.ToTensor(), tf.Normalize(mean=(0.0,), std=(1.0,))])
    tr = torchvision.datasets.MNIST('./mnist_pytorch', train=True, transform=transform)
    te = torchvision.datasets.MNIST('./mnist_pytorch', train=False, transform=transform)
    tr.data, tr.targets = tr.data[:samples], tr.targets[:samples]
    te.data, te.targets = te.data[:200], te.targets[:200]
    loader = torch.utils.data.DataLoader(tr, batch_size=50, shuffle=True, num_workers=0)
    test_loader = torch.utils.data.DataLoader(te, batch_size=200, shuffle=False)
    model = model_utils.P_MLP(archi, activation=model_utils.my_sigmoid)
    optim = torch.optim.Adam([{'params': model.synapses[i].parameters(), 'lr': 5e-4}
                              for i in range(len(archi) - 1)])
    criterion = torch.nn.MSELoss(reduction='none')

    class Timed:
        def __init__(self):
            self.batch_size, self.dataset, self.time = 50, tr, 0.0

        def __iter__(self):
            t = time.perf_counter()
            yield from loader
            self.time = time.perf_counter() - t

        def __len__(self):
            return len(loader)

    def run() -> float:
        timed = Timed()
        with contextlib.redirect_stdout(io.StringIO()):
            model_utils.train(model, optim, timed, test_loader, T1, T2, (0.0, 0.1),
                              torch.device('cpu'), 1, criterion, alg='EP', random_sign=False,
                              check_thm=False, save=False, thirdphase=False, scheduler=None)
        return timed.time
    return run


def stochep_epoch(preset: str, samples: int):
    name, _, own = preset.partition("@")
    cfg = load_preset(name)
    cfg.data_dir = data_dir(cfg.dataset)
    cfg.apply_overrides(["val_fraction=0", *[s for s in own.split(",") if s]]).validate()
    data = cfg.load_data()
    data.x_train, data.y_train = data.x_train[:samples], data.y_train[:samples]
    tr = Trainer(cfg, data, None, progress=False)

    def run() -> float:
        t = time.perf_counter()
        tr.train_epoch()
        return time.perf_counter() - t
    return run, cfg


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["mnist-1fc", "mnist-1fc-fast"],
                   help="NAME or NAME@key=value,key=value")
    p.add_argument("--archi", type=int, nargs="+", default=[784, 512, 10])
    p.add_argument("--T1", type=int, default=30)
    p.add_argument("--T2", type=int, default=10)
    p.add_argument("--samples", type=int, default=3200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if not os.environ.get("PEER_DIR"):
        sys.exit("set PEER_DIR to a checkout of the peer (../shared/peer/README.md)")
    entries = {"peer": peer_epoch(a.archi, a.T1, a.T2, a.samples)}
    cfgs = {}
    for pr in a.presets:
        entries[pr], cfgs[pr] = stochep_epoch(pr, a.samples)
    times = {n: [] for n in entries}
    loads = []
    for _ in range(a.repeats):
        loads.append(os.getloadavg()[0])
        for n, run in entries.items():
            times[n].append(run())
    rows = []
    for n, ts in times.items():
        if n == "peer":
            steps, batch = a.T1 + a.T2, 50
        else:
            c = cfgs[n]
            steps = c.T_free + c.T_nudge * (2 if c.estimator == "three-phase" else 1)
            batch = c.batch_size
        rows.append({"entry": n, "steps": steps, "batch": batch,
                     "samples_s": round(a.samples / min(ts), 1),
                     "vs_peer": round(min(times["peer"]) / min(ts), 2),
                     "epoch_times_s": [round(t, 2) for t in ts]})
    print_table(rows, [k for k in rows[0] if k != "epoch_times_s"])
    print("load average (1 min) at the start of each turn:", loads)
    if a.json:
        write_json(a.json, {"command": " ".join(sys.argv), "archi": a.archi, "T1": a.T1,
                            "T2": a.T2, "samples": a.samples, "repeats": a.repeats,
                            "loadavg_per_turn": loads, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
