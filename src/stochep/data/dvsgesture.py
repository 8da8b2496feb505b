"""DVS Gesture (Amir et al. 2017) in Tonic's on-disk layout, binned into frames.

Layout (what ``tonic.datasets.DVSGesture(save_to=DIR)`` downloads and unpacks)::

    DIR/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy
    DIR/DVSGesture/ibmGestureTest/user<NN>_<lighting>/<label>.npy

``data_dir`` may be ``DIR``, the ``DVSGesture`` folder itself, or a folder holding
``dvsgesture/DVSGesture`` (the shared-data convention). Each ``.npy`` is one recording, an
``N x 4`` array of events ``(x, y, polarity, t)`` with ``t`` in ms on the 128 x 128 DVS128
sensor; the label is the file stem, 0..10 (:data:`CLASSES`; 10 is "other gestures"). The real
set has 1077 training and 264 test recordings from 29 subjects under 3 lighting conditions;
those counts are documented, not required.

Each recording becomes ``n_frames`` frames (60 in the paper) of ``2 x size x size`` by
:func:`stochep.data.events.bin_events`: equal time bins over the recording's own span, the last
bin closed so no event is dropped, 4 x 4 sensor pixels summed into one at ``size=32``, OFF/ON
polarity channels; then scaled by ``norm`` (default ``"max"``: each sample divided by its
largest count, so inputs are rates in ``[0, 1]``; see :mod:`stochep.data.events`).

Frames are built lazily, one recording at a time, and cached as one ``.npy`` per recording
under ``$STOCHEP_CACHE/dvsgesture/`` (default ``~/.cache/stochep``, or ``cache_dir``), named by
:func:`cache_key`: a hash of every transform parameter (``n_frames``, ``size``, ``norm``, the
sensor size, :data:`FORMAT_VERSION`) and of the source file's identity (resolved path, size,
modification time in ns). A changed transform or source file therefore never reads a stale
frame; writes are atomic (temporary file, then ``os.replace``), and an unreadable or misshapen
cache file is rebuilt. The data folder itself is never written.

The splits are returned in one fixed pseudo-random order (files sorted, then permuted with seed
0, as :func:`recordings` lists them), so a prefix (``--train-subset``) mixes users and classes.
Frames are float32 ``[N, n_frames, 2, size, size]`` (exact for counts, no float16 rounding):
at the defaults about 530 MB for the 1077 training and 130 MB for the 264 test recordings, and
as much again in the cache.

Tonic is not used (reading ``.npy`` files needs only numpy), so the package declares no Tonic
extra; Tonic is merely the usual way to download the files.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from . import events as ev
from .base import DATASETS, DataError, Dataset, DatasetSource

SENSOR = (128, 128)  # DVS128 (width, height)
N_CLASSES = 11
CLASSES = ("hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
           "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
           "arm_roll", "air_drums", "air_guitar", "other_gestures")
SPLITS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}
FORMAT_VERSION = 1  # bump when binning or normalisation change, so old caches are not read
ORDER_SEED = 0
EXPECTED = "DIR/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy (and ibmGestureTest)"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def default_cache_dir() -> Path:
    return Path(os.environ.get("STOCHEP_CACHE", "~/.cache/stochep")).expanduser()


def find_root(data_dir: str | os.PathLike) -> Path:
    """The ``DVSGesture`` folder (the one holding ``ibmGestureTrain``) under ``data_dir``."""
    root = Path(data_dir).expanduser()
    for c in (root / "DVSGesture", root, root / "dvsgesture" / "DVSGesture", root / "dvsgesture"):
        if any((c / s).is_dir() for s in SPLITS.values()):
            return c
    where = f"{root} does not exist" if not root.exists() else f"not found under {root}"
    raise DataError(f"DVS Gesture {where}: expected {EXPECTED}, e.g. as "
                    f"tonic.datasets.DVSGesture(save_to=DIR) unpacks it; pass --data-dir DIR")


def recordings(root: Path, split: str) -> list[tuple[Path, int]]:
    """``(file, label)`` of one split of the ``DVSGesture`` folder, in the loader's order."""
    d = root / SPLITS[split]
    if not d.is_dir():
        raise DataError(f"DVS Gesture {split} split missing: no folder {d} "
                        f"(expected {EXPECTED})")
    out = []
    for p in sorted(d.glob("*/*.npy")):
        try:
            label = int(p.stem)
        except ValueError:
            label = -1
        if not 0 <= label < N_CLASSES:
            raise DataError(f"{p}: file name is not a DVS Gesture label 0..{N_CLASSES - 1} "
                            f"(expected <label>.npy)")
        out.append((p, label))
    if not out:
        raise DataError(f"DVS Gesture {split} split {d} holds no recordings "
                        f"(expected {d}/user<NN>_<lighting>/<label>.npy)")
    perm = torch.randperm(len(out), generator=torch.Generator().manual_seed(ORDER_SEED))
    return [out[i] for i in perm.tolist()]


def _stamp(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def cache_key(path: str | os.PathLike, n_frames: int = 60, size: int = 32,
              norm: str = ev.DEFAULT_NORM, sensor: tuple[int, int] = SENSOR) -> str:
    """Name of the cached frames of one recording: a hash of every transform parameter and
    of the source file's identity (path, size, mtime)."""
    spec = {"format": FORMAT_VERSION, "dataset": "dvsgesture", "source": _stamp(Path(path)),
            "n_frames": int(n_frames), "size": int(size), "norm": norm,
            "sensor": [int(s) for s in sensor]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def read_recording(path: Path) -> np.ndarray:
    """The ``N x 4`` event array of one ``.npy`` file; a one-line DataError if unusable."""
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - EOFError, ValueError, OSError, ... all mean unusable
        reason = _one_line(e) or type(e).__name__
        raise DataError(f"cannot read DVS Gesture recording {path} ({reason}); "
                        f"delete or replace the file") from None
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DataError(f"DVS Gesture recording {path} has shape {tuple(arr.shape)}, expected "
                        f"N x 4 events (x, y, polarity, t)")
    if len(arr) == 0:
        raise DataError(f"DVS Gesture recording {path} is empty (0 events)")
    return arr


def recording_frames(path: Path, n_frames: int = 60, size: int = 32,
                     norm: str = ev.DEFAULT_NORM, cache_dir: Path | None = None) -> np.ndarray:
    """Frames ``[n_frames, 2, size, size]`` float32 of one recording, from the cache if there
    (``cache_dir=None``: no cache), else binned and written to it."""
    shape = (n_frames, 2, size, size)
    cpath = None
    if cache_dir is not None:
        cpath = cache_dir / f"{cache_key(path, n_frames, size, norm)}.npy"
        if cpath.is_file():
            try:
                cached = np.load(cpath, allow_pickle=False)
                if cached.shape == shape and cached.dtype == np.float32:
                    return cached
            except Exception:  # noqa: BLE001, S110 - a damaged cache is rebuilt, never trusted
                pass
    try:
        frames = ev.bin_events(read_recording(path), n_frames, SENSOR, (size, size), norm)
    except ev.EventError as e:
        raise DataError(f"DVS Gesture recording {path}: {e}") from None
    out = frames.numpy()
    if cpath is not None:
        try:
            cpath.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cpath.parent, prefix=f".{cpath.stem}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, out)
                os.replace(tmp, cpath)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError:
            pass  # no writable cache: the next load bins again
    return out


def load_dvsgesture(data_dir: str | os.PathLike | None, n_frames: int = 60, size: int = 32,
                    norm: str = ev.DEFAULT_NORM, cache_dir: str | os.PathLike | None = None,
                    use_cache: bool = True) -> Dataset:
    """DVS Gesture as frames ``[N, n_frames, 2, size, size]`` float32, labels long, 11 classes."""
    if data_dir is None:
        raise DataError(f"dvsgesture needs --data-dir DIR with {EXPECTED}")
    if int(n_frames) != n_frames or n_frames < 1:
        raise DataError(f"dvsgesture n_frames must be a positive integer, got {n_frames!r}")
    if int(size) != size or not 1 <= size <= min(SENSOR):
        raise DataError(f"dvsgesture size must be an integer in 1..{min(SENSOR)}, got {size!r}")
    if norm not in ev.NORMS:
        raise DataError(f"unknown event normalisation {norm!r}; "
                        f"choose one of {', '.join(ev.NORMS)}")
    n_frames, size = int(n_frames), int(size)
    root = find_root(data_dir)
    cdir = None
    if use_cache:
        cdir = (Path(cache_dir).expanduser() if cache_dir is not None
                else default_cache_dir()) / "dvsgesture"
    arrays = []
    for split in SPLITS:
        recs = recordings(root, split)
        x = torch.empty(len(recs), n_frames, 2, size, size)
        for i, (path, _) in enumerate(recs):
            x[i] = torch.from_numpy(recording_frames(path, n_frames, size, norm, cdir))
        arrays += [x, torch.tensor([label for _, label in recs], dtype=torch.long)]
    return Dataset("dvsgesture", *arrays, n_classes=N_CLASSES)


@DATASETS.register("dvsgesture")
class DVSGesture(DatasetSource):
    """DVS Gesture in Tonic's layout, as frame sequences; ``static=True`` sums each sequence's
    frames into one (the static baseline, ``events.summed``)."""

    input_shape, n_classes = (60, 2, 32, 32), 11

    @classmethod
    def load(cls, data_dir=None, n_frames: int = 60, size: int = 32, norm: str = ev.DEFAULT_NORM,
             cache_dir: str | None = None, use_cache: bool = True,
             static: bool = False) -> Dataset:
        ds = load_dvsgesture(data_dir, n_frames, size, norm, cache_dir, use_cache)
        return ev.static_if(ds, static)
