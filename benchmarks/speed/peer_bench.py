"""The public EP peer (Laborieux-Axel/Equilibrium-Propagation, commit 93660ed) trained on MNIST
as its ``check/train_mnist.sh`` trains it, timed, for side-by-side runs with stochep.

The harness of ``../shared/peer/peer_bench.py`` (the same model, loss, optimizer and calls to
the peer's own ``model_utils.train()``; the torchvision shim there) with three additions:
``--archi`` (the peer's ``main.py`` builds its MLP from it: ``784 512 512 10`` is its
two-hidden-layer net, one Adam group of ``5e-4`` per layer), ``--T1/--T2`` (its free and nudged
steps), and the test accuracy of every epoch (its own ``evaluate``, outside the timed loop).

    PEER_DIR=DIR OMP_NUM_THREADS=1 python benchmarks/speed/peer_bench.py --train-subset 45000 \\
        [--archi 784 512 512 10 --T1 60 --T2 15] [--epochs 3]

Prints one JSON line: training samples/s (the training loop only), steps per sample, test
accuracy per epoch, load average.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIM = os.path.join(ROOT, "..", "shared", "peer", "shim")


def main() -> None:
    peer = os.environ.get("PEER_DIR")
    if not peer or not os.path.exists(os.path.join(peer, "model_utils.py")):
        sys.exit("set PEER_DIR to a checkout of Laborieux-Axel/Equilibrium-Propagation "
                 "(../shared/peer/README.md)")
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-subset", type=int, default=0)
    ap.add_argument("--test-subset", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--archi", type=int, nargs="+", default=[784, 512, 10])
    ap.add_argument("--T1", type=int, default=30)
    ap.add_argument("--T2", type=int, default=10)
    a = ap.parse_args()
    sys.path.insert(0, peer)
    sys.path.insert(1, os.environ.get("PEER_SHIM", SHIM))
    import model_utils
    import torch
    import torchvision

    if a.seed is not None:
        torch.manual_seed(a.seed)
    mbs, betas = 50, (0.0, 0.1)
    tf = torchvision.transforms
    transform = tf.Compose([tf.ToTensor(), tf.Normalize(mean=(0.0,), std=(1.0,))])
    tr = torchvision.datasets.MNIST('./mnist_pytorch', train=True, transform=transform,
                                    download=True)
    te = torchvision.datasets.MNIST('./mnist_pytorch', train=False, transform=transform,
                                    download=True)
    if a.train_subset:
        tr.data, tr.targets = tr.data[:a.train_subset], tr.targets[:a.train_subset]
    if a.test_subset:
        te.data, te.targets = te.data[:a.test_subset], te.targets[:a.test_subset]
    loader = torch.utils.data.DataLoader(tr, batch_size=mbs, shuffle=True, num_workers=0)
    test_loader = torch.utils.data.DataLoader(te, batch_size=200, shuffle=False, num_workers=0)

    class Timed:
        """Passes the loader through; records the time from the first batch to the last."""

        def __init__(self, inner):
            self.loader, self.batch_size, self.dataset = inner, inner.batch_size, inner.dataset
            self.times, self.samples = [], []

        def __iter__(self):
            t0, n = time.perf_counter(), 0
            for x, y in self.loader:
                n += len(y)
                yield x, y
            self.times.append(time.perf_counter() - t0)
            self.samples.append(n)

        def __len__(self):
            return len(self.loader)

    tests = []
    evaluate = model_utils.evaluate

    def recorded(model, loader_, T, device):
        correct = evaluate(model, loader_, T, device)
        tests.append(correct / len(loader_.dataset))
        return correct

    model_utils.evaluate = recorded
    timed = Timed(loader)
    model = model_utils.P_MLP(a.archi, activation=model_utils.my_sigmoid)
    criterion = torch.nn.MSELoss(reduction='none')
    optim = torch.optim.Adam([{'params': model.synapses[i].parameters(), 'lr': 5e-4}
                              for i in range(len(a.archi) - 1)])
    load_before = os.getloadavg()
    model_utils.train(model, optim, timed, test_loader, a.T1, a.T2, betas, torch.device('cpu'),
                      a.epochs, criterion, alg='EP', random_sign=False, check_thm=False,
                      save=False, thirdphase=False, scheduler=None)
    res = {"archi": a.archi, "T1": a.T1, "T2": a.T2, "train_samples": sum(timed.samples),
           "train_time_s": sum(timed.times),
           "samples_per_s": sum(timed.samples) / sum(timed.times),
           "epoch_times_s": timed.times, "test_acc": tests,
           "steps_per_sample": a.T1 + a.T2, "loadavg_before": load_before,
           "loadavg": os.getloadavg()}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
