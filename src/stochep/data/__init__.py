"""Datasets, one module each. ``load_dataset(name, data_dir)`` returns a :class:`Dataset`."""
from .base import Dataset, DataError, load_dataset, DATASETS

__all__ = ["Dataset", "DataError", "load_dataset", "DATASETS"]
