"""CIFAR-10 pickles: layout, structure checks, normalisation; batch augmentation."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from stochep.data import DATASETS, DataError, load_dataset
from stochep.data.augment import augment_batch
from stochep.data.cifar10 import CLASSES, TEST_FILE, TRAIN_FILES, load_cifar10

N = 20  # images per batch file


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"batch", b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"{i:05d}.png".encode() for i in range(n)]}


def make_cifar(root: Path, subdir: bool = True) -> dict:
    """Small batches in the real on-disk format; returns what was written, by file name."""
    d = root / "cifar-10-batches-py" if subdir else root
    d.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate(TRAIN_FILES + (TEST_FILE,)):
        written[name] = _batch(N, i)
        _dump(d / name, written[name])
    _dump(d / "batches.meta", {b"num_cases_per_batch": N, b"num_vis": 3072,
                               b"label_names": [c.encode() for c in CLASSES]})
    return written


def _raw(written, names):
    data = np.concatenate([written[n][b"data"] for n in names])
    return torch.from_numpy(data).view(-1, 3, 32, 32).double() / 255


def test_loads_the_real_format_and_normalises(tmp_path):
    written = make_cifar(tmp_path)
    ds = load_dataset("cifar10", str(tmp_path))
    assert "cifar10" in DATASETS and ds.name == "cifar10" and ds.n_classes == 10
    assert ds.x_train.shape == (5 * N, 3, 32, 32) and ds.x_test.shape == (N, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.long
    assert ds.input_shape == (3, 32, 32) and ds.class_names == CLASSES
    y = np.concatenate([written[n][b"labels"] for n in TRAIN_FILES])
    assert ds.y_train.tolist() == y.tolist()
    assert ds.y_test.tolist() == written[TEST_FILE][b"labels"]
    # train statistics: mean 0, std 1 per channel; stored and applied to the test set as well
    raw_tr, raw_te = _raw(written, TRAIN_FILES), _raw(written, [TEST_FILE])
    mean = raw_tr.mean((0, 2, 3))
    std = raw_tr.permute(1, 0, 2, 3).flatten(1).std(1, unbiased=False)
    assert torch.allclose(torch.tensor(ds.mean, dtype=torch.float64), mean, atol=1e-12)
    assert torch.allclose(torch.tensor(ds.std, dtype=torch.float64), std, atol=1e-12)
    assert torch.allclose(ds.x_train.double().mean((0, 2, 3)), torch.zeros(3).double(), atol=1e-5)
    assert torch.allclose(ds.x_train.double().permute(1, 0, 2, 3).flatten(1).std(1),
                          torch.ones(3, dtype=torch.float64), atol=1e-3)
    expected_te = (raw_te - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    assert torch.allclose(ds.x_test.double(), expected_te, atol=1e-5)
    # the pixel layout is channel-major: data[:, :1024] is the red plane, row by row
    plain = load_cifar10(tmp_path, normalize=False)
    assert plain.mean is None and plain.std is None
    assert torch.allclose(plain.x_train.double(), raw_tr, atol=1e-7)
    first = written[TRAIN_FILES[0]][b"data"][0]
    assert plain.x_train[0, 1, 2, 3] * 255 == pytest.approx(float(first[1024 + 2 * 32 + 3]))


def test_batches_directly_in_data_dir(tmp_path):
    make_cifar(tmp_path, subdir=False)
    assert load_cifar10(tmp_path).x_train.shape[0] == 5 * N


def _corrupt(path: Path, kind: str) -> None:
    if kind == "missing":
        path.unlink()
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "not-a-pickle":
        path.write_text("hello")
    elif kind == "wrong-shape":
        d = _batch(N, 0)
        d[b"data"] = d[b"data"].reshape(N * 2, 1536)
        d[b"labels"] = d[b"labels"] * 2
        _dump(path, d)
    elif kind == "wrong-dtype":
        d = _batch(N, 0)
        d[b"data"] = d[b"data"].astype(np.float32)
        _dump(path, d)
    elif kind == "label-out-of-range":
        d = _batch(N, 0)
        d[b"labels"][3] = 10
        _dump(path, d)
    elif kind == "count-mismatch":
        d = _batch(N, 0)
        d[b"labels"] = d[b"labels"][:-1]
        _dump(path, d)
    elif kind == "no-data-key":
        d = _batch(N, 0)
        del d[b"data"]
        _dump(path, d)
    elif kind == "foreign-object":  # a pickle that would run code when loaded
        path.write_bytes(pickle.dumps({b"data": _Evil()}, protocol=2))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


BATCH_FAULTS = ["missing", "truncated", "not-a-pickle", "wrong-shape", "wrong-dtype",
                "label-out-of-range", "count-mismatch", "no-data-key", "foreign-object"]
META_FAULTS = ["missing", "truncated", "not-a-pickle", "foreign-object"]
CASES = ([("data_batch_3", k) for k in BATCH_FAULTS] + [("test_batch", k) for k in BATCH_FAULTS]
         + [("batches.meta", k) for k in META_FAULTS])


@pytest.mark.parametrize("name, kind", CASES)
def test_bad_files_raise_one_line_data_error_naming_the_file(tmp_path, name, kind):
    make_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / name
    _corrupt(path, kind)
    with pytest.raises(DataError) as e:
        load_cifar10(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert "build_batches.py" in msg


def test_missing_directory_says_how_to_build(tmp_path):
    for d in (tmp_path / "nope", tmp_path):  # absent, and present but empty
        with pytest.raises(DataError, match="build_batches.py") as e:
            load_dataset("cifar10", str(d))
        assert "\n" not in str(e.value) and str(d) in str(e.value)
    with pytest.raises(DataError, match="data_dir"):
        load_dataset("cifar10", None)


# ---- augmentation -------------------------------------------------------------------------
def test_augment_is_deterministic_for_a_seed_and_keeps_shape():
    x = torch.rand(16, 3, 32, 32)
    a = augment_batch(x, torch.Generator().manual_seed(5))
    b = augment_batch(x, torch.Generator().manual_seed(5))
    c = augment_batch(x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, x.clone())  # input untouched
    # with no padding and no flip it is the identity
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(0), pad=0, flip=False), x)


def test_augment_matches_a_manual_crop_and_flip():
    x = torch.rand(64, 3, 8, 10)
    seed = 3
    out = augment_batch(x, torch.Generator().manual_seed(seed))
    # replay the draws: offsets [B, 2] (row, col) in 0..8, then flips [B] in {0, 1}
    g = torch.Generator().manual_seed(seed)
    offsets = torch.randint(0, 9, (64, 2), generator=g)
    flips = torch.randint(0, 2, (64,), generator=g)
    assert 0 < flips.sum() < 64 and (offsets != 4).any()  # both cases and real shifts occur
    for i in range(64):
        padded = torch.zeros(3, 16, 18)
        padded[:, 4:12, 4:14] = x[i]
        oy, ox = offsets[i].tolist()
        crop = padded[:, oy:oy + 8, ox:ox + 10]
        if flips[i]:
            crop = crop.flip(-1)
        assert torch.equal(out[i], crop), i
    # a crop at the extreme offsets brings in a zero border: the top rows at offset 0
    i = int((offsets[:, 0] == 0).nonzero()[0])
    assert (out[i, :, :4] == 0).all() and (out[i, :, 4:] != 0).all()
    with pytest.raises(ValueError, match="B, C, H, W"):
        augment_batch(torch.rand(3, 32, 32), torch.Generator())
