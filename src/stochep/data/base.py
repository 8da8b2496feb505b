"""In-memory dataset container, and the registry of datasets (:class:`DatasetSource`)."""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass

import torch

from stochep.registry import DATASETS
from stochep.validation import check_options, suggest


class DataError(Exception):
    """A dataset is missing or malformed; the message names the file and what to do."""


@dataclass
class Dataset:
    """Train and test tensors: images as floats in [0, 1] ``[N, *input_shape]``, labels long.

    Text datasets hold token ids (as floats, exact below 2**24; 0 is padding) and the
    ``embedding`` matrix ``[vocab + 1, d]`` their first interaction looks the ids up in.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    embedding: torch.Tensor | None = None
    # a dataset built from a user's tensors: its name, shapes and a hash of its content, which
    # the run records so it can check that a resume gets the same data (:meth:`from_tensors`)
    fingerprint: dict | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @classmethod
    def shape_only(cls, name: str, input_shape, n_classes: int) -> Dataset:
        """A dataset with no samples, only the shape of its inputs and its class count: what a
        network trained on data you no longer pass needs to be rebuilt and to score new inputs
        (``Trainer.from_run(dir)`` of a run on your own tensors)."""
        empty = torch.zeros(0, *input_shape)
        labels = torch.zeros(0, dtype=torch.int64)
        return cls(name, empty, labels, empty, labels, int(n_classes))

    @classmethod
    def from_tensors(cls, x_train, y_train, x_test, y_test, name: str = "custom",
                     n_classes: int | None = None) -> Dataset:
        """A dataset of your own tensors: inputs ``[N, *shape]`` with values in [0, 1] (any
        float or integer dtype; converted to float32), integer labels ``0..n_classes-1`` (any
        width; converted to int64). Every problem is one :class:`ValueError` line."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        x_train, y_train = as_inputs(x_train, "x_train"), as_labels(y_train, "y_train")
        x_test, y_test = as_inputs(x_test, "x_test"), as_labels(y_test, "y_test")
        check_channels_first(x_train, "x_train")
        for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
            if len(x) != len(y):
                raise ValueError(f"x_{part} has {len(x)} samples but y_{part} has {len(y)} labels")
            if len(x) == 0:
                raise ValueError(f"x_{part} is empty")
        if x_train.shape[1:] != x_test.shape[1:]:
            raise ValueError(f"x_train samples are {tuple(x_train.shape[1:])} but x_test samples "
                             f"are {tuple(x_test.shape[1:])}")
        top = int(max(y_train.max(), y_test.max())) + 1
        inferred = n_classes is None
        if inferred:
            n_classes = top
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        if top > n_classes:
            raise ValueError(f"labels must be in 0..{n_classes - 1}, found {top - 1}")
        low = int(min(y_train.min(), y_test.min()))
        if low > 0 and inferred:
            raise ValueError(f"labels must start at class 0, but the smallest is {low}: "
                             f"subtract {low} (y - {low}), or pass n_classes={top} if class "
                             f"0{'..' + str(low - 1) if low > 1 else ''} is real but absent")
        ds = cls(name, x_train, y_train, x_test, y_test, n_classes)
        ds.fingerprint = {"name": name, "input_shape": list(ds.input_shape),
                          "n_train": len(y_train), "n_test": len(y_test),
                          "n_classes": n_classes, "sha256": content_hash(ds)}
        return ds


def _tensor(v, what: str) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v
    try:
        return torch.as_tensor(v)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be a tensor or array, got {type(v).__name__}") from None


def as_floats(x, what: str = "x") -> torch.Tensor:
    """``x`` as a float32 tensor (any float or integer dtype is converted), or one ValueError."""
    x = _tensor(x, what)
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"{what} must be real numbers, got dtype {x.dtype}")
    return x if x.dtype == torch.float32 else x.to(torch.float32)


def check_channels_first(x: torch.Tensor, what: str = "x") -> None:
    """One ValueError for images that look channels-last ``[N, H, W, C]`` (C of 1, 3 or 4
    after two larger sides): the networks read ``[N, C, H, W]``."""
    if x.dim() == 4 and x.shape[3] in (1, 3, 4) and min(x.shape[1], x.shape[2]) > 4:
        raise ValueError(f"{what} looks channels-last {tuple(x.shape)} ([N, H, W, C]); images "
                         f"are [N, C, H, W]: pass {what}.permute(0, 3, 1, 2)")


def as_inputs(x, what: str = "x") -> torch.Tensor:
    """``x`` as a float32 tensor of values in [0, 1], or one ValueError line saying why not."""
    x = as_floats(x, what)
    if x.dim() < 2:
        raise ValueError(f"{what} must be [N, *sample_shape], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} holds NaN or inf")
    lo, hi = x.min().item(), x.max().item()
    if lo < 0 or hi > 1:
        hint = " (8-bit images: divide by 255)" if hi <= 255 and lo >= 0 else \
            " (scale to [0, 1], e.g. (x - x.min()) / (x.max() - x.min()))"
        raise ValueError(f"{what} must lie in [0, 1] (firing rates), found [{lo:g}, {hi:g}]{hint}")
    return x.contiguous()


def as_labels(y, what: str = "y") -> torch.Tensor:
    """``y`` as int64 class indices, or one ValueError line saying why not."""
    y = _tensor(y, what)
    if y.dtype.is_floating_point and y.isnan().any():
        raise ValueError(f"{what} holds NaN: every sample needs a class index")
    if y.dim() != 1:
        raise ValueError(f"{what} must be one class index per sample [N], got shape "
                         f"{tuple(y.shape)}")
    if y.dtype.is_floating_point:
        if not torch.equal(y, y.round()):
            raise ValueError(f"{what} must be integer class indices, got fractional values")
    elif y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{what} must be integer class indices, got dtype {y.dtype}")
    y = y.to(torch.int64)
    if len(y) and y.min() < 0:
        raise ValueError(f"{what} must be class indices >= 0, found {int(y.min())}")
    return y


def as_batch(x, input_shape, token_ids: bool = False) -> torch.Tensor:
    """Inputs to score, checked as :meth:`Dataset.from_tensors` checks training data: shaped
    ``[N, *input_shape]`` (channels-last images named as such), not empty, finite and in
    [0, 1] (unless ``token_ids``: a text dataset's ids), as float32; or one ValueError."""
    x = as_floats(x, "x")
    shape = tuple(input_shape)
    if tuple(x.shape[1:]) != shape:
        if x.dim() == 4 and tuple(x.permute(0, 3, 1, 2).shape[1:]) == shape:
            check_channels_first(x)
        raise ValueError(f"x must be [N, {', '.join(map(str, shape))}] like the training "
                         f"data, got {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError("x is empty")
    return x if token_ids else as_inputs(x, "x")


def as_batch_labels(y, n: int, n_classes: int) -> torch.Tensor:
    """``n`` labels in ``0..n_classes-1`` as int64, or one ValueError."""
    y = as_labels(y, "y")
    if len(y) != n:
        raise ValueError(f"x has {n} samples but y has {len(y)} labels")
    top = int(y.max())
    if top >= n_classes:
        raise ValueError(f"y must hold class indices in 0..{n_classes - 1} (the network's "
                         f"{n_classes} classes), found {top}")
    return y


def content_hash(ds: Dataset) -> str:
    """sha256 of a dataset's tensors (train and test, inputs and labels)."""
    h = hashlib.sha256()
    for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class DatasetSource:
    """A registered dataset: its shape and class count without reading it, and its loader.

    Subclass it in the dataset's module and decorate it with ``@DATASETS.register("name")``;
    then ``dataset: name`` in a config loads it, with ``data_options`` passed to :meth:`load`.
    """

    name = "dataset"
    input_shape: tuple[int, ...] = ()  # at the loader's defaults
    n_classes: int = 0
    # the folder of ``../shared/data`` (the data root) its files are in; None: its own name
    folder: str | None = None

    @classmethod
    def data_folder(cls) -> str:
        return cls.folder or cls.name

    @classmethod
    def load(cls, data_dir=None, **options) -> Dataset:
        raise NotImplementedError

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The ``data_options`` :meth:`load` takes."""
        params = inspect.signature(cls.load).parameters.values()
        return tuple(p.name for p in params if p.name != "data_dir"
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))




def dataset_shape(name: str) -> tuple[tuple[int, ...], int]:
    """``(input_shape, n_classes)`` of a dataset, without reading it. A flat 784 is read as
    (1, 28, 28) by conv layers (``training.models.image_shape``)."""
    source = _source(name)
    return source.input_shape, source.n_classes


def _source(name: str) -> type[DatasetSource]:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def load_dataset(name: str, data_dir: str | None = None, **options) -> Dataset:
    """The dataset registered as ``name``, from ``data_dir``, with the loader's ``options``;
    an option the loader does not take is one :class:`DataError` line naming the ones it does."""
    source = _source(name)
    known = source.option_names()
    for key in options:
        if key not in known:
            raise DataError(f"unknown data option {key!r}{suggest(key, known)} for dataset "
                            f"{name!r} (its options: {', '.join(known) or 'none'})")
    try:
        options = check_options(f"data_options for dataset {name!r}", options, source.load)
    except ValueError as e:
        raise DataError(str(e)) from None
    return source.load(data_dir, **options)
