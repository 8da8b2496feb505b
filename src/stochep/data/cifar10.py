"""CIFAR-10 read from the standard ``cifar-10-batches-py`` pickles (the paper's 5C benchmark).

The batches (``data_batch_1..5``, ``test_batch``, ``batches.meta``) are looked up in
``data_dir/cifar-10-batches-py``, then in ``data_dir`` itself. Files are checked for structure
(``b'data'`` uint8 ``[N, 3072]``, ``b'labels'`` N ints in 0..9), not checksums: the shared copy
was rebuilt from JPEGs. Unpickling only admits the numpy objects an array needs, so a foreign
pickle cannot run code. Images are float32 ``[N, 3, 32, 32]`` in [0, 1] or, with
``normalize=True``, standardised per channel with the training set's mean and std (stored on the
returned dataset, to be reused on any other input).
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import DATASETS, DataError, Dataset, DatasetSource

SUBDIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
_BUILD = "python ../shared/data/cifar10/build_batches.py DIR"
_FIX = f"(re)build the batches with `{_BUILD}` (from the project root) and pass data_dir=DIR"

# What a CIFAR pickle may reference: numpy's array reconstruction and, in protocol-2 pickles
# written by Python 3, ``_codecs.encode`` for bytes objects. Nothing else.
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}

# What a malformed pickle can raise while loading.
_PICKLE_ERRORS = (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, KeyError,
                  IndexError, AttributeError, ImportError, ArithmeticError, MemoryError)


@dataclass
class CIFAR10(Dataset):
    """A :class:`Dataset` that also records the per-channel normalisation it applied."""

    mean: tuple[float, ...] | None = None  # subtracted per channel (None: not normalised)
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] = CLASSES


class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"CIFAR-10 file {path} not found; {_FIX}")
    try:
        with open(path, "rb") as f:
            d = _NumpyOnly(f, encoding="bytes").load()
    except _PICKLE_ERRORS as e:  # unreadable, truncated, not a pickle, foreign objects
        raise DataError(f"cannot unpickle CIFAR-10 file {path} ({type(e).__name__}: "
                        f"{_one_line(e) or 'no detail'}); {_FIX}") from None
    if not isinstance(d, dict):
        raise DataError(f"CIFAR-10 file {path} holds a {type(d).__name__}, expected a dict; {_FIX}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data uint8 [N, 3072], labels int64 [N])`` of one batch file, after structure checks."""
    d = _unpickle(path)
    for key in ("data", "labels"):
        if key not in d:
            raise DataError(f"CIFAR-10 file {path} has no b'{key}' entry; {_FIX}")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:
        desc = (f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray)
                else type(data).__name__)
        raise DataError(f"CIFAR-10 file {path}: b'data' is {desc}, expected uint8 [N, 3072]; "
                        f"{_FIX}")
    labels = d["labels"]
    try:
        lab = np.asarray(labels)
        ok = lab.ndim == 1 and lab.dtype.kind in "iu"
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"CIFAR-10 file {path}: b'labels' must be a list of ints; {_FIX}")
    if len(lab) != len(data):
        raise DataError(f"CIFAR-10 file {path} has {len(data)} images but {len(lab)} labels; "
                        f"{_FIX}")
    if len(lab) and (lab.min() < 0 or lab.max() > 9):
        bad = int(lab.min()) if lab.min() < 0 else int(lab.max())
        raise DataError(f"CIFAR-10 file {path} has label {bad} outside 0..9; {_FIX}")
    return data, lab.astype(np.int64)


def _locate(root: Path) -> Path:
    for d in (root / SUBDIR, root):
        if (d / TRAIN_FILES[0]).is_file() or (d / META_FILE).is_file():
            return d
    raise DataError(f"CIFAR-10 batches not found in {root} (nor {root / SUBDIR}): expected "
                    f"{', '.join(TRAIN_FILES[:1])}..5, {TEST_FILE}, {META_FILE}; build them with "
                    f"`{_BUILD}` (from the project root) and pass data_dir=DIR")


def channel_stats(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and std (population) of uint8 ``[N, 3072]`` images, in [0, 1]."""
    mean, std = np.empty(3), np.empty(3)
    levels = np.arange(256, dtype=np.float64) / 255.0
    for c in range(3):
        counts = np.bincount(data[:, c * 1024:(c + 1) * 1024].ravel(), minlength=256)
        p = counts / counts.sum()
        mean[c] = p @ levels
        std[c] = np.sqrt(p @ (levels - mean[c]) ** 2)
    return mean, std


def _to_tensor(data: np.ndarray, mean=None, std=None) -> torch.Tensor:
    x = torch.from_numpy(data).view(len(data), 3, 32, 32).to(torch.float32).div_(255.0)
    if mean is not None:
        x.sub_(torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        x.div_(torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
    return x


def load_cifar10(data_dir: str | os.PathLike | None, normalize: bool = True) -> CIFAR10:
    """Load CIFAR-10: 50,000 training and 10,000 test images ``[N, 3, 32, 32]``, labels long."""
    if data_dir is None:
        raise DataError(f"cifar10 needs data_dir (a folder holding {SUBDIR}/); "
                        f"build it with `{_BUILD}` (from the project root)")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"CIFAR-10 data directory {root} does not exist; build it with "
                        f"`{_BUILD}` (from the project root) and pass data_dir=DIR")
    d = _locate(root)
    meta = _unpickle(d / META_FILE)
    names = meta.get("label_names", CLASSES)
    try:
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    except (TypeError, ValueError):
        names = ()
    if len(names) != 10:
        raise DataError(f"CIFAR-10 file {d / META_FILE}: b'label_names' must list 10 classes; "
                        f"{_FIX}")
    train = [_read_batch(d / f) for f in TRAIN_FILES]
    x_tr = np.concatenate([a for a, _ in train])
    y_tr = np.concatenate([b for _, b in train])
    x_te, y_te = _read_batch(d / TEST_FILE)
    mean = std = None
    if normalize:
        m, s = channel_stats(x_tr)
        if (s <= 0).any():
            raise DataError(f"CIFAR-10 training images in {d} have a constant channel "
                            f"(std 0), cannot normalise; {_FIX}")
        mean, std = tuple(float(v) for v in m), tuple(float(v) for v in s)
    return CIFAR10("cifar10", _to_tensor(x_tr, mean, std), torch.from_numpy(y_tr),
                   _to_tensor(x_te, mean, std), torch.from_numpy(y_te), n_classes=10,
                   mean=mean, std=std, class_names=names)


@DATASETS.register("cifar10")
class CIFAR10Source(DatasetSource):
    """CIFAR-10 in the standard ``cifar-10-batches-py`` layout."""

    input_shape, n_classes = (3, 32, 32), 10

    @classmethod
    def load(cls, data_dir=None, normalize: bool = True) -> Dataset:
        return load_cifar10(data_dir, normalize=normalize)
