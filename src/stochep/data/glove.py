"""GloVe word vectors in the standard text format: one ``word v1 ... vd`` per line (``.gz`` too).

The dimension is taken from the first line; every other line must have the same. The paper
uses the 300-d vectors (appendix C); any dimension works.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import torch

from .base import DataError


def load_glove(path: str | os.PathLike, vocab: set[str] | None = None
               ) -> tuple[dict[str, int], torch.Tensor]:
    """``(word -> row, vectors [n, d])`` of the words in ``path`` (only those in ``vocab`` if
    given). Malformed lines, a changing dimension and unreadable files are one-line
    :class:`DataError`\\ s naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"GloVe file {path} not found; pass the path of a glove.*.txt[.gz] file "
                        "(e.g. ../shared/data/glove/glove.6B.50d.imdb-vocab.txt.gz)")
    words: dict[str, int] = {}
    rows: list[list[float]] = []
    dim = None
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").split(" ")
                if dim is None:
                    dim = len(parts) - 1
                    if dim < 1:
                        raise DataError(f"{path}, line {n}: expected 'word v1 ... vd', got "
                                        f"{line[:60]!r}")
                if len(parts) != dim + 1:
                    raise DataError(f"{path}, line {n}: {len(parts) - 1} numbers where the first "
                                    f"line has {dim} (malformed or mixed dimensions)")
                word = parts[0]
                if vocab is not None and word not in vocab:
                    continue
                try:
                    vec = [float(v) for v in parts[1:]]
                except ValueError:
                    raise DataError(f"{path}, line {n}: a value of {word!r} is not a "
                                    "number") from None
                if word not in words:
                    words[word] = len(rows)
                    rows.append(vec)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read GloVe file {path} ({' '.join(str(e).split())})") from None
    if dim is None:
        raise DataError(f"GloVe file {path} is empty")
    return words, torch.tensor(rows, dtype=torch.float32).reshape(len(rows), dim)
