"""MNIST and Fashion-MNIST read from the four standard IDX files (plain or ``.gz``).

The files are looked up in ``data_dir``, then ``data_dir/mnist`` (``fashion-mnist``), then the
torchvision layout ``data_dir/MNIST/raw`` (``FashionMNIST/raw``). Local files are checked for
structure (magic number, declared sizes, 28x28, matching counts, labels 0..9), not checksums.
With ``download=True`` missing files are fetched from the official hosts into
``data_dir/<name>`` and verified against the published MD5 sums.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch

from .base import DATASETS, DataError, Dataset, DatasetSource

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049

# Where each variant lives under data_dir, its download mirrors, and the MD5 of each .gz file
# (the values torchvision publishes).
_SUBDIRS = {"mnist": ("mnist", "MNIST/raw"), "fashion-mnist": ("fashion-mnist", "FashionMNIST/raw")}
_MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
_FIX = "delete it and rerun with --download, or copy the official file"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in one IDX file, after checking its header against its length."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path} ({_one_line(e)}); {_FIX}") from None
    ndim = 3 if magic == IMAGES_MAGIC else 1
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else "none"
        raise DataError(f"{path} is not an IDX {'image' if ndim == 3 else 'label'} file "
                        f"(magic number {found}, expected {magic}); {_FIX}")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has extra bytes"
        raise DataError(f"{path} {what}: {len(raw)} bytes, header declares {expected}; {_FIX}")
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{path} holds {dims[1]}x{dims[2]} images, expected 28x28; {_FIX}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _locate(root: Path, name: str, variant: str) -> Path | None:
    """The first of ``name`` / ``name.gz`` in root or its known subfolders, else None."""
    for d in (root, *(root / s for s in _SUBDIRS[variant])):
        for p in (d / name, d / f"{name}.gz"):
            if p.is_file():
                return p
    return None


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()


def _download(name: str, dest_dir: Path, variant: str) -> Path:
    """Fetch ``name.gz`` into dest_dir atomically, trying each mirror; verify its MD5."""
    fname, want = f"{name}.gz", _MD5[variant][name]
    dest_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in _MIRRORS[variant]:
        try:
            data = _fetch(mirror + fname)
        except OSError as e:  # URLError, HTTPError and timeouts are all OSErrors
            errors.append(f"{mirror}{fname}: {_one_line(e)}")
            continue
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{fname}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            got = hashlib.md5(Path(tmp).read_bytes()).hexdigest()
            if got == want:
                os.replace(tmp, dest_dir / fname)
                return dest_dir / fname
            errors.append(f"{mirror}{fname}: MD5 {got} != published {want}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise DataError(f"could not download {dest_dir / fname} ({'; '.join(errors)}); "
                    f"check the network or copy the official file there")


def load_mnist(data_dir: str | os.PathLike | None, download: bool = False, flatten: bool = True,
               variant: str = "mnist") -> Dataset:
    """Load MNIST (or ``variant="fashion-mnist"``): images float32 in [0, 1] shaped ``[N, 784]``
    (``[N, 1, 28, 28]`` with ``flatten=False``), labels long."""
    if variant not in _SUBDIRS:
        raise DataError(f"unknown IDX dataset {variant!r}; choose one of {', '.join(_SUBDIRS)}")
    if data_dir is None:
        raise DataError(f"{variant} needs --data-dir (a folder with the four IDX files, "
                        f"or where --download should put them)")
    root = Path(data_dir).expanduser()
    if not root.is_dir() and not download:
        raise DataError(f"{variant} data directory {root} does not exist; "
                        f"pass --data-dir pointing at the IDX files or use --download")
    paths = {}
    for name in FILES:
        path = _locate(root, name, variant)
        if path is None and download:
            path = _download(name, root / variant, variant)
        if path is None:
            raise DataError(f"{variant} file {name}[.gz] not found in {root} (nor its "
                            f"{' or '.join(_SUBDIRS[variant])} subfolder); "
                            f"pass --data-dir pointing at the IDX files or use --download")
        paths[name] = path

    arrays = []
    for split in ("train", "t10k"):
        ipath, lpath = paths[f"{split}-images-idx3-ubyte"], paths[f"{split}-labels-idx1-ubyte"]
        images, labels = _read_idx(ipath, IMAGES_MAGIC), _read_idx(lpath, LABELS_MAGIC)
        if len(images) != len(labels):
            raise DataError(f"{ipath} has {len(images)} images but {lpath} has {len(labels)} "
                            f"labels; {_FIX}")
        if len(labels) and labels.max() > 9:
            raise DataError(f"{lpath} has label {int(labels.max())} outside 0..9; {_FIX}")
        x = images.astype(np.float32)
        x /= 255.0
        x = x.reshape(len(x), 784) if flatten else x.reshape(len(x), 1, 28, 28)
        arrays += [torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))]
    return Dataset(variant, *arrays, n_classes=10)


def load_fashion_mnist(data_dir: str | os.PathLike | None, **kw) -> Dataset:
    return load_mnist(data_dir, variant="fashion-mnist", **kw)


@DATASETS.register("mnist")
class MNIST(DatasetSource):
    """MNIST from its four IDX files."""

    input_shape, n_classes = (784,), 10

    @classmethod
    def load(cls, data_dir=None, download: bool = False, flatten: bool = True) -> Dataset:
        return load_mnist(data_dir, download=download, flatten=flatten)


@DATASETS.register("fashion-mnist")
class FashionMNIST(MNIST):
    """Fashion-MNIST, in MNIST's IDX layout."""

    @classmethod
    def load(cls, data_dir=None, download: bool = False, flatten: bool = True) -> Dataset:
        return load_fashion_mnist(data_dir, download=download, flatten=flatten)
