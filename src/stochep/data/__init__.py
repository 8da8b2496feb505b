"""Datasets, one module each. ``load_dataset(name, data_dir)`` returns a :class:`Dataset`."""
from .base import DATASETS, DataError, Dataset, load_dataset

__all__ = ["DATASETS", "DataError", "Dataset", "load_dataset"]
