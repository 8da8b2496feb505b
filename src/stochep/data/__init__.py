"""Datasets, one module each; each registers a :class:`DatasetSource` in ``DATASETS``, so
``load_dataset(name, data_dir, **options)`` returns a :class:`Dataset` and
``dataset_shape(name)`` its shape without reading it."""
from . import cifar10, digits, dvsgesture, event_mnist, imdb, mnist  # noqa: E402,F401  (register)
from .base import DATASETS, DataError, Dataset, DatasetSource, dataset_shape, load_dataset

__all__ = ["DATASETS", "DataError", "Dataset", "DatasetSource", "dataset_shape", "load_dataset"]
