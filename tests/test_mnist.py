"""MNIST / Fashion-MNIST IDX loading: parsing, layouts, the real files, errors and --download."""
import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from shared_data import needs_data

from stochep.data import DataError, load_dataset, mnist
from stochep.data.mnist import FILES, load_mnist

N = {"train": 5, "t10k": 3}


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_set(d: Path, gz: bool = False, seed: int = 0) -> dict:
    """Write the four small IDX files into d; return the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in N.items():
        arrays[f"{split}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}-labels-idx1-ubyte"] = np.arange(n, dtype=np.uint8) % 10
    for name, arr in arrays.items():
        magic = 2051 if "images" in name else 2049
        write(d / (name + (".gz" if gz else "")), idx_bytes(arr, magic))
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_parses_plain_and_gz(tmp_path, gz):
    arrays = make_set(tmp_path, gz=gz)
    ds = load_mnist(tmp_path)
    assert ds.name == "mnist" and ds.n_classes == 10 and ds.input_shape == (784,)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.long
    assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (3, 784)
    want = arrays["train-images-idx3-ubyte"].reshape(5, 784).astype(np.float32) / 255
    assert torch.equal(ds.x_train, torch.from_numpy(want))
    assert ds.y_train.tolist() == [0, 1, 2, 3, 4] and ds.y_test.tolist() == [0, 1, 2]


def test_unflattened_shape(tmp_path):
    arrays = make_set(tmp_path)
    ds = load_mnist(tmp_path, flatten=False)
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.x_test.shape == (3, 1, 28, 28)
    assert torch.equal(ds.x_test[:, 0] * 255,
                       torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float())


@pytest.mark.parametrize("name,sub", [("mnist", "mnist"), ("mnist", "MNIST/raw"),
                                      ("fashion-mnist", "fashion-mnist"),
                                      ("fashion-mnist", "FashionMNIST/raw")])
def test_layouts_through_registry(tmp_path, name, sub):
    make_set(tmp_path / sub, gz=True)
    ds = load_dataset(name, str(tmp_path))
    assert ds.name == name and len(ds.y_train) == 5 and len(ds.y_test) == 3


def test_real_mnist():
    real_mnist = needs_data("mnist")
    ds = load_dataset("mnist", str(real_mnist))
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert len(ds.y_train) == 60000 and len(ds.y_test) == 10000
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == torch.float32 and x.min() == 0 and x.max() == 1
        assert y.dtype == torch.long and y.min() == 0 and y.max() == 9
        assert (torch.bincount(y, minlength=10) > 0).all()


def assert_error(fn, fragment: str):
    with pytest.raises(DataError) as exc:
        fn()
    msg = str(exc.value)
    assert fragment in msg, msg
    assert "\n" not in msg, msg
    return msg


def test_data_dir_none():
    msg = assert_error(lambda: load_dataset("mnist", None), "--data-dir")
    assert "--download" in msg


def test_missing_dir(tmp_path):
    missing = tmp_path / "nope"
    msg = assert_error(lambda: load_mnist(missing), str(missing))
    assert "--data-dir" in msg and "--download" in msg


def test_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "_fetch", lambda url: pytest.fail("must not download"))
    make_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    msg = assert_error(lambda: load_mnist(tmp_path), "t10k-labels-idx1-ubyte")
    assert "--data-dir" in msg and "--download" in msg


def corrupt(tmp_path, name: str, data: bytes, gz: bool = False) -> str:
    """A full set with one file replaced by data; return that file's name."""
    make_set(tmp_path, gz=gz)
    fname = name + (".gz" if gz else "")
    write(tmp_path / fname, data)
    return fname


@pytest.mark.parametrize("gz", [False, True])
def test_bad_magic(tmp_path, gz):
    lab = np.zeros(5, np.uint8)
    fname = corrupt(tmp_path, "train-labels-idx1-ubyte", idx_bytes(lab, 2051), gz)
    assert "magic" in assert_error(lambda: load_mnist(tmp_path), fname)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file(tmp_path, gz):
    data = idx_bytes(np.zeros((5, 28, 28), np.uint8), 2051)[:-100]
    fname = corrupt(tmp_path, "train-images-idx3-ubyte", data, gz)
    assert "truncated" in assert_error(lambda: load_mnist(tmp_path), fname)


def test_extra_bytes(tmp_path):
    data = idx_bytes(np.zeros(3, np.uint8), 2049) + b"\0"
    fname = corrupt(tmp_path, "t10k-labels-idx1-ubyte", data)
    assert "extra bytes" in assert_error(lambda: load_mnist(tmp_path), fname)


def test_short_header(tmp_path):
    fname = corrupt(tmp_path, "t10k-images-idx3-ubyte", b"\0\0\x08\x03\0\0")
    assert_error(lambda: load_mnist(tmp_path), fname)


def test_truncated_gzip_stream(tmp_path):
    make_set(tmp_path, gz=True)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-50])
    assert_error(lambda: load_mnist(tmp_path), p.name)


def test_wrong_image_size(tmp_path):
    fname = corrupt(tmp_path, "train-images-idx3-ubyte",
                    idx_bytes(np.zeros((5, 27, 28), np.uint8), 2051))
    assert "28x28" in assert_error(lambda: load_mnist(tmp_path), fname)


def test_mismatched_counts(tmp_path):
    fname = corrupt(tmp_path, "train-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8), 2049))
    msg = assert_error(lambda: load_mnist(tmp_path), fname)
    assert "train-images-idx3-ubyte" in msg and "5 images" in msg and "4 labels" in msg


def test_label_out_of_range(tmp_path):
    fname = corrupt(tmp_path, "t10k-labels-idx1-ubyte",
                    idx_bytes(np.array([0, 10, 3], np.uint8), 2049))
    assert "10" in assert_error(lambda: load_mnist(tmp_path), fname)


# --download: the fetch function is replaced by one that serves local bytes; nothing goes online.

@pytest.fixture
def served(tmp_path, monkeypatch):
    """gz bytes of a small set keyed by file name; _fetch serves them and records the URLs."""
    src = tmp_path / "src"
    make_set(src, gz=True)
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    urls = []

    def fetch(url):
        urls.append(url)
        return files[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(mnist, "_fetch", fetch)
    return files, urls


def test_download_good_checksum(tmp_path, served, monkeypatch):
    files, urls = served
    for name in FILES:
        md5 = hashlib.md5(files[name + ".gz"]).hexdigest()
        monkeypatch.setitem(mnist._MD5["mnist"], name, md5)
    root = tmp_path / "data"
    ds = load_mnist(root, download=True)
    assert len(ds.y_train) == 5 and len(ds.y_test) == 3
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(f + ".gz" for f in FILES)
    assert all(u.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/") for u in urls)
    assert len(urls) == 4
    load_mnist(root, download=True)  # everything present now: no further fetches
    assert len(urls) == 4


def test_download_bad_checksum(tmp_path, served):
    _files, urls = served  # the small files cannot match the published MD5 sums
    root = tmp_path / "data"
    msg = assert_error(lambda: load_mnist(root, download=True), "train-images-idx3-ubyte.gz")
    assert "MD5" in msg
    assert list((root / "mnist").iterdir()) == []  # temp file removed, nothing installed
    assert len(urls) == 2  # both mirrors tried


def test_download_falls_back_to_second_mirror(tmp_path, served, monkeypatch):
    files, _urls = served
    for name in FILES:
        md5 = hashlib.md5(files[name + ".gz"]).hexdigest()
        monkeypatch.setitem(mnist._MD5["mnist"], name, md5)

    def flaky(url):
        if "ossci" in url:
            raise urllib.error.URLError("connection refused")
        return files[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(mnist, "_fetch", flaky)
    ds = load_mnist(tmp_path / "data", download=True)
    assert len(ds.y_train) == 5


def test_download_network_failure(tmp_path, monkeypatch):
    def down(url):
        raise urllib.error.URLError("no route\nto host")

    monkeypatch.setattr(mnist, "_fetch", down)
    msg = assert_error(lambda: load_dataset("fashion-mnist", str(tmp_path), download=True),
                       "train-images-idx3-ubyte.gz")
    assert "fashion-mnist.s3-website" in msg
