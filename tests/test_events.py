"""Event streams (data/events.py, data/dvsgesture.py, data/event_mnist.py): binning against
hand-counted frames, the cache key, DVS Gesture in Tonic's layout end to end on tiny synthetic
recordings, one-line errors, and the generated event-MNIST."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import random_recording, write_tonic
from shared_data import needs_data

from stochep.data import DataError, dataset_shape, load_dataset
from stochep.data import dvsgesture as dvs
from stochep.data import events as ev
from stochep.data.event_mnist import (
    generate_event_mnist,
    make_event_mnist,
    select_indices,
    simulate,
)
from stochep.data.events import EventError, bin_events, frames_to_events
from stochep.data.mnist import load_mnist


def one_line_error(fn, *fragments, exc=DataError):
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


# ---- binning ---------------------------------------------------------------------------------

# A 4 x 4 sensor pooled to 2 x 2, 3 frames over t = 0..9 ms: bins [0,3) [3,6) [6,9].
# Columns x, y, p, t. The two events at t_max = 9 land in the last frame (Tonic's integer window
# 9 // 3 = 3 with half-open bins would drop both).
HAND = np.array([
    [0, 0, 1, 0.0],   # frame 0, ON,  pooled (y0, x0)
    [3, 0, 0, 2.9],   # frame 0, OFF, (y0, x1)
    [1, 2, 1, 3.0],   # frame 1, ON,  (y1, x0)
    [2, 3, 0, 5.5],   # frame 1, OFF, (y1, x1)
    [3, 3, 1, 6.0],   # frame 2, ON,  (y1, x1)
    [0, 1, 1, 9.0],   # frame 2, ON,  (y0, x0)   t_max
    [1, 1, 1, 9.0],   # frame 2, ON,  (y0, x0)   t_max, same pooled pixel
])


def hand_expected():
    want = torch.zeros(3, 2, 2, 2)
    want[0, 1, 0, 0] = 1
    want[0, 0, 0, 1] = 1
    want[1, 1, 1, 0] = 1
    want[1, 0, 1, 1] = 1
    want[2, 1, 1, 1] = 1
    want[2, 1, 0, 0] = 2
    return want


def test_bin_events_matches_hand_counted_frames():
    frames = bin_events(HAND, 3, sensor=(4, 4), size=(2, 2))
    assert frames.dtype == torch.float32 and frames.shape == (3, 2, 2, 2)
    assert torch.equal(frames, hand_expected())
    # order-independent (span is min..max), tensors and Tonic's structured arrays accepted
    shuffled = HAND[np.random.default_rng(0).permutation(len(HAND))]
    assert torch.equal(bin_events(torch.from_numpy(shuffled), 3, (4, 4), 2), hand_expected())
    rec = np.zeros(len(HAND), dtype=[("x", "<i2"), ("y", "<i2"), ("p", "?"), ("t", "<i8")])
    for i, f in enumerate("xypt"):
        rec[f] = HAND[:, i]
    rec["t"] = np.round(HAND[:, 3] * 1000)  # us, as Tonic holds them
    assert torch.equal(bin_events(rec, 3, (4, 4), 2), hand_expected())


def test_remainder_rule_keeps_every_event_and_fills_the_last_frame():
    rng = np.random.default_rng(1)
    for n_frames in (1, 7, 60):
        n = 500
        e = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                      np.sort(rng.uniform(13.0, 6000.0, n))], axis=1)
        f = bin_events(e, n_frames)
        assert f.sum() == n  # nothing dropped
        assert f[0].sum() > 0 and f[-1].sum() > 0  # no empty leading or trailing frame
        assert f[-1].sum() >= (e[:, 3] == e[:, 3].max()).sum()
    # zero span: every event in frame 0
    same_t = np.array([[1, 1, 1, 5.0], [2, 2, 0, 5.0]])
    f = bin_events(same_t, 4, (4, 4), 4)
    assert f[0].sum() == 2 and f[1:].sum() == 0


def test_downsampling_pools_sensor_pixels_and_polarity_conventions():
    e = np.array([[0, 0, 1, 0], [3, 3, 1, 1], [4, 0, 0, 2], [127, 127, 0, 3], [124, 125, 0, 4]])
    f = bin_events(e, 1)  # 128 -> 32: 4 x 4 sensor pixels per output pixel
    assert f[0, 1, 0, 0] == 2 and f[0, 0, 0, 1] == 1 and f[0, 0, 31, 31] == 2 and f.sum() == 5
    f = bin_events(e, 1, size=(16, 8))  # non-square: rows pool 8, columns 16
    assert f.shape == (1, 2, 16, 8) and f[0, 0, 15, 7] == 2 and f[0, 1, 0, 0] == 2
    pm = np.array([[0, 0, -1, 0], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 0, 3]])
    f = bin_events(pm, 1, (4, 4), 4)  # -1 and 0 are OFF, any positive value ON
    assert f[0, 0, 0, 0] == 2 and f[0, 1, 0, 0] == 2


def test_normalisations():
    raw = bin_events(HAND, 3, (4, 4), 2, norm="none")
    assert torch.equal(bin_events(HAND, 3, (4, 4), 2, norm="max"), raw / 2)
    lg = bin_events(HAND, 3, (4, 4), 2, norm="log1p")
    assert torch.allclose(lg, torch.log1p(raw) / np.log1p(2.0)) and lg.max() == 1
    batch = torch.stack([raw, 3 * raw, torch.zeros_like(raw)])
    out = ev.normalise(batch, "max")  # each sample by its own maximum; zero stays zero
    assert torch.equal(out[0], out[1]) and out[0].max() == 1 and out[2].abs().sum() == 0
    one_line_error(lambda: bin_events(HAND, 3, (4, 4), 2, norm="per-frame"), "per-frame",
                   exc=ValueError)


@pytest.mark.parametrize("events,fragment", [
    (np.zeros((5, 3)), "N x 4"),
    (np.zeros(4), "N x 4"),
    (np.zeros((0, 4)), "empty recording"),
    (np.array([[1, 1, 1, np.nan]]), "NaN"),
    (np.array([[128, 1, 1, 0.0]]), "x coordinates"),
    (np.array([[1, -1, 1, 0.0]]), "y coordinates"),
    (np.array(["a", "b", "c", "d"]).reshape(1, 4), "numeric"),
])
def test_bad_event_arrays_give_one_line_errors(events, fragment):
    msg = one_line_error(lambda: bin_events(events, 4), fragment, exc=ValueError)
    with pytest.raises(EventError):
        bin_events(events, 4)
    assert msg


def test_frames_to_events_round_trips_through_bin_events():
    counts = torch.zeros(4, 2, 3, 3)
    counts[0, 1, 0, 0], counts[1, 0, 2, 1], counts[2, 1, 1, 1], counts[3, 0, 2, 2] = 2, 1, 3, 1
    e = frames_to_events(counts, dt=2.5)
    assert e.shape == (7, 4) and (np.diff(e[:, 3]) >= 0).all()
    assert torch.equal(bin_events(e, 4, sensor=(3, 3), size=3), counts)


# ---- DVS Gesture in Tonic's layout -----------------------------------------------------------

@pytest.fixture
def gesture(tmp_path, monkeypatch):
    monkeypatch.setenv("STOCHEP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "data", write_tonic(tmp_path / "data")


def cache_files(tmp_path):
    return sorted((tmp_path / "cache" / "dvsgesture").glob("*.npy"))


def test_cache_key_changes_with_every_parameter_and_the_source(tmp_path):
    p = tmp_path / "0.npy"
    np.save(p, random_recording(np.random.default_rng(0)))
    base = dvs.cache_key(p, 60, 32, "max")
    assert dvs.cache_key(p, 60, 32, "max") == base
    variants = [dvs.cache_key(p, 59, 32, "max"), dvs.cache_key(p, 60, 16, "max"),
                dvs.cache_key(p, 60, 32, "log1p"), dvs.cache_key(p, 60, 32, "none"),
                dvs.cache_key(p, 60, 32, "max", sensor=(64, 64))]
    assert len({base, *variants}) == 1 + len(variants)
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched
    touched = dvs.cache_key(p, 60, 32, "max")
    np.save(p, random_recording(np.random.default_rng(1), n=7))  # rewritten
    rewritten = dvs.cache_key(p, 60, 32, "max")
    q = tmp_path / "u" / "0.npy"  # same bytes elsewhere
    q.parent.mkdir()
    q.write_bytes(p.read_bytes())
    assert len({base, touched, rewritten, dvs.cache_key(q, 60, 32, "max")}) == 4


def test_dvsgesture_end_to_end_with_cache(gesture, tmp_path, monkeypatch):
    data_dir, files = gesture
    ds = load_dataset("dvsgesture", str(data_dir), n_frames=5, size=8)
    assert ds.name == "dvsgesture" and ds.n_classes == 11 and ds.input_shape == (5, 2, 8, 8)
    assert ds.x_train.shape == (5, 5, 2, 8, 8) and ds.x_test.shape == (3, 5, 2, 8, 8)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.long
    assert sorted(ds.y_train.tolist()) == [0, 1, 3, 3, 10]
    assert sorted(ds.y_test.tolist()) == [2, 5, 7]
    root = dvs.find_root(data_dir)
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        recs = dvs.recordings(root, split)
        assert [lab for _, lab in recs] == y.tolist()
        for (path, label), frames in zip(recs, x):
            assert files[path] == label
            want = bin_events(np.load(path), 5, (128, 128), (8, 8), norm="max")
            assert torch.equal(frames, want) and frames.max() == 1
    assert len(cache_files(tmp_path)) == 8

    def boom(*a, **k):
        raise AssertionError("binned although cached")

    monkeypatch.setattr(ev, "bin_events", boom)
    again = load_dataset("dvsgesture", str(data_dir / "DVSGesture"), n_frames=5, size=8)
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)
    with pytest.raises(AssertionError, match="binned although cached"):
        dvs.load_dvsgesture(data_dir, n_frames=4, size=8)  # a new transform is not cached
    monkeypatch.undo()
    monkeypatch.setenv("STOCHEP_CACHE", str(tmp_path / "cache"))
    four = dvs.load_dvsgesture(data_dir, n_frames=4, size=8, norm="none")
    assert four.x_train.shape[1] == 4 and four.x_train.sum() == sum(
        len(np.load(p)) for p, lab in files.items() if "Train" in str(p))
    assert len(cache_files(tmp_path)) == 16


def test_explicit_cache_dir_no_cache_and_damaged_cache(gesture, tmp_path):
    data_dir, _ = gesture
    ds = dvs.load_dvsgesture(data_dir, n_frames=3, size=4, cache_dir=tmp_path / "mine")
    written = sorted((tmp_path / "mine" / "dvsgesture").glob("*.npy"))
    assert len(written) == 8 and not cache_files(tmp_path)
    written[0].write_bytes(b"garbage")  # a damaged cache file is rebuilt
    again = dvs.load_dvsgesture(data_dir, n_frames=3, size=4, cache_dir=tmp_path / "mine")
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.x_test, ds.x_test)
    assert np.load(written[0]).shape == (3, 2, 4, 4)
    dvs.load_dvsgesture(data_dir, n_frames=3, size=4, use_cache=False)
    assert not cache_files(tmp_path)
    assert not list((tmp_path / "mine" / "dvsgesture").glob("*.tmp"))


def test_missing_dataset_says_where_files_go(tmp_path):
    for where in (tmp_path / "nope", tmp_path):
        one_line_error(lambda w=where: dvs.load_dvsgesture(w), str(where),
                       "DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy")
    one_line_error(lambda: load_dataset("dvsgesture", None), "--data-dir")
    user = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_led"
    user.mkdir(parents=True)
    one_line_error(lambda: dvs.load_dvsgesture(tmp_path), "holds no recordings", str(user.parent))
    np.save(user / "4.npy", random_recording(np.random.default_rng(0)))
    one_line_error(lambda: dvs.load_dvsgesture(tmp_path), "test split missing", "ibmGestureTest")


@pytest.mark.parametrize("content,fragment", [
    (b"", "cannot read"),
    (b"\x93NUMPY garbage that is not an array", "cannot read"),
    ("empty", "empty (0 events)"),
    ("shape", "has shape (5, 3)"),
    ("outside", "outside the sensor"),
])
def test_bad_recordings_name_the_file(gesture, content, fragment):
    data_dir, files = gesture
    bad = next(p for p in files if p.parent.name == "user02_led")
    if content == "empty":
        np.save(bad, np.zeros((0, 4)))
    elif content == "shape":
        np.save(bad, np.zeros((5, 3)))
    elif content == "outside":
        e = random_recording(np.random.default_rng(3))
        e[0, 0] = 128
        np.save(bad, e)
    else:
        bad.write_bytes(content)
    one_line_error(lambda: dvs.load_dvsgesture(data_dir, n_frames=3, size=4), str(bad),
                   fragment)


def test_bad_label_file_name_and_parameters(gesture):
    data_dir, files = gesture
    p = next(iter(files))
    p.rename(p.with_name("11.npy"))
    one_line_error(lambda: dvs.load_dvsgesture(data_dir), "11.npy", "label 0..10")
    one_line_error(lambda: dvs.load_dvsgesture(data_dir, size=0), "size")
    one_line_error(lambda: dvs.load_dvsgesture(data_dir, n_frames=0), "n_frames")
    one_line_error(lambda: dvs.load_dvsgesture(data_dir, norm="frame"), "frame")


def test_registered_shapes():
    assert dataset_shape("dvsgesture") == ((60, 2, 32, 32), 11)
    assert dataset_shape("event-mnist") == ((10, 2, 32, 32), 10)


# ---- event-MNIST (generated from the real MNIST digits) ---------------------------------------

@pytest.fixture(scope="module")
def mnist():
    return load_mnist(needs_data("mnist"), flatten=False)


def test_event_mnist_is_deterministic_and_labelled_like_its_digits(mnist):
    a = make_event_mnist(mnist, n_train=50, n_test=20, seed=0)
    b = make_event_mnist(mnist, n_train=50, n_test=20, seed=0)
    c = make_event_mnist(mnist, n_train=50, n_test=20, seed=1)
    assert a.name == "event-mnist" and a.n_classes == 10 and a.input_shape == (10, 2, 32, 32)
    assert a.x_train.shape == (50, 10, 2, 32, 32) and a.x_test.shape == (20, 10, 2, 32, 32)
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.long
    assert 0 <= a.x_train.min() and a.x_train.amax(dim=(1, 2, 3, 4)).eq(1).all()
    for s in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, s), getattr(b, s))
    assert not torch.equal(a.x_train, c.x_train)
    itr, ite = select_indices(60000, 50, 0, "train"), select_indices(10000, 20, 0, "test")
    assert torch.equal(a.y_train, mnist.y_train[itr]) and torch.equal(a.y_test, mnist.y_test[ite])
    assert len(set(a.y_train.tolist())) >= 8
    # the frames are those of exactly these digits
    counts = simulate(F.pad(mnist.x_test[ite, 0], (2, 2, 2, 2)))
    assert torch.equal(a.x_test, ev.normalise(counts, "max"))
    raw = make_event_mnist(mnist, n_frames=4, size=28, n_train=5, n_test=5, norm="none")
    assert raw.x_train.shape == (5, 4, 2, 28, 28) and raw.x_train.max() > 1
    assert torch.equal(raw.x_train, raw.x_train.round())


def test_each_frame_shows_only_part_of_the_digit(mnist):
    d = make_event_mnist(mnist, n_train=50, n_test=1)
    idx = select_indices(60000, 50, 0, "train")
    support = F.pad(mnist.x_train[idx, 0], (2, 2, 2, 2)) > 0.5
    active = (d.x_train > 0).any(dim=2)  # [N, T, H, W]
    size = support.flatten(1).sum(1).float()
    per_frame = (active & support[:, None]).flatten(2).sum(2) / size[:, None]
    union = (active.any(1) & support).flatten(1).sum(1) / size
    assert (per_frame.max(1).values < union).all()
    assert per_frame.mean() < 0.7 and union.mean() > 0.9
    # ON and OFF both occur, and the motion makes frames differ
    assert d.x_train[:, :, 0].sum() > 0 and d.x_train[:, :, 1].sum() > 0
    assert not torch.equal(active[:, 0], active[:, 5])


def test_event_mnist_raw_events_bin_back_to_the_counts(mnist):
    counts = simulate(F.pad(mnist.x_train[:3, 0], (2, 2, 2, 2)))
    for c in counts:
        e = frames_to_events(c, dt=10.0)
        assert torch.equal(bin_events(e, 10, sensor=(32, 32), size=32), c)


def test_event_mnist_registry_generate_and_errors(mnist, tmp_path):
    real_mnist = needs_data("mnist")
    ds = load_dataset("event-mnist", str(real_mnist), n_train=10, n_test=5, n_frames=3)
    assert ds.x_train.shape == (10, 3, 2, 32, 32) and ds.name == "event-mnist"
    path = generate_event_mnist(real_mnist, tmp_path, n_train=10, n_test=5, n_frames=3)
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved["x_train"], ds.x_train) and torch.equal(saved["y_test"], ds.y_test)
    assert saved["params"]["n_frames"] == 3 and saved["params"]["seed"] == 0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    one_line_error(lambda: load_dataset("event-mnist", None), "MNIST", "--data-dir")
    one_line_error(lambda: make_event_mnist(mnist, n_train=60001), "n_train", "60000")
    one_line_error(lambda: make_event_mnist(mnist, size=20), "size")
