"""Issue benchmark: 1FC and 2FC on the real MNIST (../shared/data/mnist), one after the other.

Runs ``train_preset.py`` for each model with the same budget and overrides; each writes
``results/train_<model>.json`` with accuracy per epoch and wall time.

    python benchmarks/learning/mnist_fc.py [--minutes 50] [--set key=value ...]
"""
import sys

import train_preset


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for model in ("mnist-1fc", "mnist-2fc"):
        train_preset.main(["--model", model, *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main())
