"""Dense GEMM against a sparse-CSR product for binary spikes times a weight matrix.

The drive of a layer is ``s @ W`` with ``s`` the spikes below: 0/1, and mostly 0 at the rates the
recipes train at. This measures whether storing ``s`` as CSR (``torch.sparse``) beats the dense
``addmm_`` the engine uses, at several firing rates (mnist-2fc's readout shape by default).

    OMP_NUM_THREADS=1 python benchmarks/speed/sparse_spikes.py [--batch 256] [--n 512] [--m 700]
"""
from __future__ import annotations

import argparse
import warnings

import torch

from stochep.tools.results import best_time, print_table, write_json


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--m", type=int, default=700)
    p.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.13, 0.3])
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    g = torch.Generator().manual_seed(0)
    w = torch.randn(args.n, args.m, generator=g)
    out = torch.zeros(args.batch, args.m)
    rows = []
    for rate in args.rates:
        s = (torch.rand(args.batch, args.n, generator=g) < rate).float()
        dense = 1e3 * best_time(lambda s=s: out.zero_().addmm_(s, w), args.repeats)
        csr = 1e3 * best_time(lambda s=s: s.to_sparse_csr() @ w, args.repeats)
        rows.append({"rate": rate, "dense_ms": dense, "csr_ms": csr, "csr_speedup": dense / csr})
    print(f"batch {args.batch}, {args.n} x {args.m}, {torch.get_num_threads()} thread(s), best of "
          f"{args.repeats}")
    print_table(rows, ["rate", "dense_ms", "csr_ms", "csr_speedup"])
    write_json("sparse_spikes.json", {"rows": rows, "batch": args.batch, "n": args.n, "m": args.m,
                                      "threads": torch.get_num_threads()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
