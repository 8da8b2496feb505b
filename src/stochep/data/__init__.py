"""Datasets, one module each. ``load_dataset(name, data_dir)`` returns a :class:`Dataset`."""
from .base import DATASETS, SHAPES, DataError, Dataset, dataset_shape, load_dataset

__all__ = ["DATASETS", "SHAPES", "DataError", "Dataset", "dataset_shape", "load_dataset"]
