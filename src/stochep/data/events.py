"""Event streams to frames: equal time bins, spatial pooling, two polarity channels.

Pure numpy/torch; Tonic is not needed. An event array is ``N x 4`` with columns
``(x, y, polarity, t)``: the layout of Tonic's DVS Gesture ``.npy`` files (``t`` in ms; any
unit works, only ratios of times matter). A numpy structured array with fields ``x, y, p, t``
(Tonic's in-memory format) is accepted too.

Binning (:func:`bin_events`):

- **Time**: the recording's span ``[t_min, t_max]`` (min and max over all events, so the events
  need not be sorted) is cut into ``n_frames`` equal bins; an event goes to bin
  ``floor((t - t_min) * n_frames / (t_max - t_min))``, clipped to ``n_frames - 1``.
  **Remainder rule**: the bins are half-open ``[start, end)`` except the last, which is closed,
  so the event at ``t_max`` lands in the last frame. No event is dropped, the total count is
  preserved, and for a non-empty recording the first and the last frame are never empty (frames
  in between are empty only where the recording itself has a gap). A recording whose events all
  share one timestamp (zero span) puts every event in frame 0.
  Tonic's ``ToFrame(n_time_bins=n)`` differs: it uses the integer window
  ``(t[-1] - t[0]) // n``, half-open on the right, so every event after ``t[0] + n * window``
  (always at least the last one) is dropped, a span shorter than ``n`` time units gives a zero
  window and ``n`` empty frames, and it relies on the events being sorted.
- **Space**: ``x -> x * W // sensor_w``, ``y -> y * H // sensor_h`` (``sensor = (width,
  height)``, ``size = (height, width)``); counts of the pooled sensor pixels are summed.
- **Polarity**: channel 1 (ON) for ``p > 0``, channel 0 (OFF) otherwise. For the usual 0/1 or
  boolean polarity this is "any nonzero is ON"; unlike a nonzero test, it also keeps the
  -1/+1 convention of some recorders the right way round.

Normalisation (:func:`normalise`; the paper states none): the networks' inputs are rates in
``[0, 1]`` (hard-sigmoid states), so the default ``"max"`` divides a sample's counts by its
largest count (over all frames, polarities and pixels), giving ``[0, 1]`` while keeping the
relative intensity across time and polarity (a per-frame maximum would blow a nearly silent
frame up to full scale). ``"log1p"`` compresses large counts first: ``log1p(c) /
log1p(max c)``, also in ``[0, 1]``, less dominated by a few hot pixels. ``"none"`` keeps raw
counts.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import DataError

NORMS = ("none", "log1p", "max")
DEFAULT_NORM = "max"


class EventError(DataError, ValueError):
    """A malformed event array (a ValueError and a DataError, so either may be caught)."""


def _as_array(events) -> np.ndarray:
    """An ``N x 4`` float64 array ``(x, y, p, t)`` from an array, a tensor or a structured array."""
    if isinstance(events, torch.Tensor):
        events = events.detach().cpu().numpy()
    events = np.asarray(events)
    if events.dtype.names is not None:
        missing = [f for f in "xypt" if f not in events.dtype.names]
        if missing:
            raise EventError(f"structured event array lacks field(s) {', '.join(missing)} "
                             f"(has {', '.join(events.dtype.names)})")
        events = np.stack([events[f].astype(np.float64) for f in "xypt"], axis=-1)
    if events.ndim != 2 or events.shape[1] != 4:
        raise EventError(f"events must be an N x 4 array (x, y, polarity, t), "
                         f"got shape {tuple(events.shape)}")
    if not (np.issubdtype(events.dtype, np.number) or events.dtype == bool):
        raise EventError(f"events must be numeric, got dtype {events.dtype}")
    return events.astype(np.float64, copy=False)


def _pair(v, what: str) -> tuple[int, int]:
    a, b = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if int(a) < 1 or int(b) < 1:
        raise ValueError(f"{what} must be positive, got {v!r}")
    return int(a), int(b)


def normalise(frames: torch.Tensor, norm: str = DEFAULT_NORM) -> torch.Tensor:
    """Counts ``[*batch, n_frames, 2, H, W]`` scaled as ``norm`` says (module docstring), each
    sample (the last four dimensions) by its own maximum; an all-zero sample stays zero."""
    if norm not in NORMS:
        raise ValueError(f"unknown event normalisation {norm!r}; choose one of {', '.join(NORMS)}")
    if norm == "none":
        return frames
    top = frames.flatten(-4).amax(-1).clamp(min=1e-12)[(...,) + (None,) * 4]
    if norm == "max":
        return frames / top
    return torch.log1p(frames) / torch.log1p(top)


def bin_events(events, n_frames: int, sensor=(128, 128), size=(32, 32),
               norm: str = "none") -> torch.Tensor:
    """Frames ``[n_frames, 2, H, W]`` float32 of an event array (module docstring).

    ``sensor`` is ``(width, height)`` of the camera (DVS128: 128 x 128), ``size`` the output
    ``(H, W)`` (an int for square). ``norm`` defaults to ``"none"`` here (raw counts, exact);
    loaders apply their own default. Raises :class:`EventError` (a ValueError) for a wrong
    shape, an empty recording, NaN/inf values or coordinates outside the sensor.
    """
    if int(n_frames) != n_frames or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    n_frames = int(n_frames)
    sw, sh = _pair(sensor, "sensor")
    h, w = _pair(size, "size")
    if h > sh or w > sw:
        raise ValueError(f"output size {h}x{w} is larger than the {sw}x{sh} sensor")
    ev = _as_array(events)
    if len(ev) == 0:
        raise EventError("empty recording: the event array has no events")
    if not np.isfinite(ev).all():
        raise EventError("events contain NaN or infinite values")
    x, y, p, t = ev.T
    for name, v, lim in (("x", x, sw), ("y", y, sh)):
        lo, hi = v.min(), v.max()
        if lo < 0 or hi >= lim:
            raise EventError(f"{name} coordinates span {lo:g}..{hi:g}, outside the sensor's "
                             f"0..{lim - 1} (columns must be x, y, polarity, t)")
    t0, span = t.min(), t.max() - t.min()
    if span > 0:
        k = np.floor((t - t0) * (n_frames / span)).astype(np.int64)
        np.clip(k, 0, n_frames - 1, out=k)
    else:
        k = np.zeros(len(t), np.int64)
    xs = x.astype(np.int64) * w // sw
    ys = y.astype(np.int64) * h // sh
    pol = (p > 0).astype(np.int64)
    flat = ((k * 2 + pol) * h + ys) * w + xs
    counts = np.bincount(flat, minlength=n_frames * 2 * h * w)
    frames = torch.from_numpy(counts.astype(np.float32)).reshape(n_frames, 2, h, w)
    return normalise(frames, norm)


def frames_to_events(frames, dt: float = 1.0) -> np.ndarray:
    """Events ``N x 4`` ``(x, y, p, t)`` of integer count frames ``[n_frames, 2, H, W]``: each
    count becomes that many events at the middle of its step, ``t = (k + 0.5) * dt``.

    :func:`bin_events` with the same ``n_frames`` and ``sensor = size`` gives the frames back
    exactly when the first and the last frame hold events (the recording's span then covers
    ``n_frames - 1`` steps, and ``floor(k * n / (n - 1)) = k`` for ``k < n - 1``).
    """
    f = torch.as_tensor(frames).round().to(torch.int64).numpy()
    if f.ndim != 4 or f.shape[1] != 2:
        raise ValueError(f"frames must be [n_frames, 2, H, W], got {tuple(f.shape)}")
    if (f < 0).any():
        raise ValueError("frames hold negative counts")
    k, p, yy, xx = np.nonzero(f)
    reps = f[k, p, yy, xx]
    ev = np.stack([xx, yy, p, (k + 0.5) * dt], axis=-1).astype(np.float64)
    return np.repeat(ev, reps, axis=0)


def summed(ds):
    """The static counterpart of a frame dataset: each sample's frames summed into one frame
    (scaled by its largest value into [0, 1]), kept as a one-frame sequence ``[N, 1, *frame]``.
    Temporal EP on it is static EP on the same events (the baseline of appendix A)."""
    from dataclasses import replace

    def one(x):
        s = x.sum(1, keepdim=True)
        peak = s.flatten(1).amax(1).clamp_min(1e-12)
        return s / peak.view(-1, *([1] * (s.dim() - 1)))

    return replace(ds, x_train=one(ds.x_train), x_test=one(ds.x_test))


def static_if(ds, static: bool):
    """``ds``, or with ``static=True`` its frames summed into one (:func:`summed`)."""
    if not isinstance(static, bool):
        raise DataError(f"static must be true or false, got {static!r}")
    return summed(ds) if static else ds
