"""IMDB movie reviews (Maas et al. 2011) as token ids, with GloVe word vectors (appendix B, C).

Source: the standard ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` layout under
``data_dir``, or a ``*.tar.gz`` in ``data_dir`` that holds it (read without unpacking). Labels:
``neg`` 0, ``pos`` 1. Files are read in sorted order, then each split is put in one fixed
pseudo-random order (seed 0), so ids are reproducible and any prefix of a split (e.g. a
``--train-subset``) is a random sample of both classes rather than all ``neg``.

Preprocessing (decisions, documented here and in docs/text.md):

- **Tokenizer** (:func:`tokenize`): lowercase; HTML line breaks ``<br />`` become spaces;
  ``n't`` is split off as GloVe's tokenizer does ("don't" -> "do", "n't"); tokens are the
  matches of :data:`TOKEN_RE`: ``n't``, the clitics ``'s 're 've 'll 'd 'm``, and runs of
  ``[a-z0-9]``. Other punctuation is dropped.
- **Vocabulary**: built from the training split only: every training token with at least
  ``min_count`` occurrences that has a word vector, most frequent first (ties alphabetical).
  Id 0 is padding.
- **Out-of-vocabulary words are dropped before truncation**, as in Bal & Sengupta's
  preprocessing; then each review keeps its first ``max_len`` (256, appendix C) tokens and is
  padded with 0. The attention masks padding (``interactions/attention.py``).
- **Word vectors**: a GloVe text file (:mod:`stochep.data.glove`), any dimension. Unless given,
  it is the first ``glove*.txt[.gz]`` in ``data_dir``, then in ``data_dir/../glove``. Row 0 of
  the embedding (padding) is zero. ``$STOCHEP_GLOVE`` names another file (e.g. the paper's
  300-d ``glove.6B.300d.txt``).

The encoded splits and the embedding matrix are cached as one tensor file under
``$STOCHEP_CACHE`` (default ``~/.cache/stochep``), keyed by the review source, the GloVe file
(path, size, modification time) and every preprocessing parameter, so a changed input or
setting never reads a stale cache; the shared data folder is never written.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from collections import Counter
from pathlib import Path

import torch

from .base import DATASETS, DataError, Dataset, DatasetSource
from .glove import load_glove

TOKEN_RE = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|[a-z0-9]+")
PREPROCESS_VERSION = 2  # bump when tokenize/encode/order change, so old caches are not read
ORDER_SEED = 0
SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}


def tokenize(text: str) -> list[str]:
    """Lowercase tokens of a review (module docstring)."""
    text = text.lower().replace("<br />", " ").replace("<br/>", " ")
    text = re.sub(r"n't\b", " n't", text)
    return TOKEN_RE.findall(text)


def encode(tokens: list[str], vocab: dict[str, int], max_len: int = 256) -> list[int]:
    """Ids of the in-vocabulary tokens (OOV dropped first), truncated to ``max_len``, padded
    with 0."""
    ids = [vocab[t] for t in tokens if t in vocab][:max_len]
    return ids + [0] * (max_len - len(ids))


def build_vocab(token_lists, known: set[str] | None = None, min_count: int = 1) -> dict[str, int]:
    """Word -> id (from 1) of the training tokens seen ``min_count`` times that are ``known``."""
    counts = Counter(t for toks in token_lists for t in toks)
    words = sorted((w for w, c in counts.items()
                    if c >= min_count and (known is None or w in known)),
                   key=lambda w: (-counts[w], w))
    return {w: i + 1 for i, w in enumerate(words)}


def _source(root: Path) -> Path:
    if (root / "aclImdb").is_dir():
        return root / "aclImdb"
    if root.name == "aclImdb" and root.is_dir():
        return root
    archives = sorted(root.glob("*.tar.gz")) if root.is_dir() else []
    if archives:
        return archives[0]
    raise DataError(f"IMDB not found in {root}: expected aclImdb/{{train,test}}/{{pos,neg}}/*.txt "
                    "or a .tar.gz holding it (e.g. --data-dir ../shared/data/imdb)")


def read_reviews(source: Path) -> dict[str, tuple[list[str], list[int]]]:
    """``split -> (texts, labels)`` from an ``aclImdb`` folder or a ``.tar.gz`` holding it."""
    out = {s: ([], []) for s in SPLITS}
    pat = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")
    try:
        files = []  # (name, text)
        if source.is_dir():
            for p in source.glob("*/*/*.txt"):
                files.append((str(p.relative_to(source.parent)), p.read_text(encoding="utf-8")))
        else:
            with tarfile.open(source, "r:gz") as tar:  # in archive order: one pass of gzip
                for m in tar:
                    if m.isfile() and pat.search(m.name):
                        files.append((m.name, tar.extractfile(m).read().decode("utf-8")))
        for name, text in sorted(files):
            g = pat.search(name)
            if g:
                out[g[1]][0].append(text)
                out[g[1]][1].append(LABELS[g[2]])
        for s in SPLITS:
            gen = torch.Generator().manual_seed(ORDER_SEED)
            perm = torch.randperm(len(out[s][0]), generator=gen).tolist()
            out[s] = ([out[s][0][i] for i in perm], [out[s][1][i] for i in perm])
    except (OSError, EOFError, tarfile.TarError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read IMDB reviews from {source} "
                        f"({' '.join(str(e).split())})") from None
    for s in SPLITS:
        if not out[s][0]:
            raise DataError(f"IMDB source {source} has no {s} reviews "
                            f"(expected aclImdb/{s}/{{pos,neg}}/*.txt)")
    return out


def find_glove(root: Path) -> Path:
    if os.environ.get("STOCHEP_GLOVE"):
        return Path(os.environ["STOCHEP_GLOVE"]).expanduser()
    for d in (root, root.parent / "glove"):
        found = sorted(d.glob("glove*.txt.gz")) + sorted(d.glob("glove*.txt")) \
            if d.is_dir() else []
        if found:
            return found[0]
    raise DataError(f"no GloVe vectors found in {root} or {root.parent / 'glove'} (a "
                    "glove*.txt[.gz] file); put one there or set STOCHEP_GLOVE=PATH")


def _stamp(p: Path) -> list:
    st = p.stat()
    return [str(p.resolve()), st.st_size, int(st.st_mtime)]


def cache_dir() -> Path:
    return Path(os.environ.get("STOCHEP_CACHE", "~/.cache/stochep")).expanduser()


def load_imdb(data_dir: str | os.PathLike | None, embeddings: str | os.PathLike | None = None,
              max_len: int = 256, min_count: int = 1, use_cache: bool = True) -> Dataset:
    """IMDB as token ids ``[N, max_len]`` (float) with labels and the embedding matrix."""
    if data_dir is None:
        raise DataError("imdb needs --data-dir (a folder with aclImdb/ or its .tar.gz, e.g. "
                        "../shared/data/imdb)")
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise DataError(f"imdb data directory {root} does not exist")
    source = _source(root)
    glove = Path(embeddings) if embeddings else find_glove(root)
    if not glove.is_file():
        raise DataError(f"GloVe file {glove} not found")
    key = hashlib.sha256(json.dumps([_stamp(source), _stamp(glove), max_len, min_count,
                                     PREPROCESS_VERSION]).encode()).hexdigest()[:20]
    cpath = cache_dir() / f"imdb-{key}.pt"
    if use_cache and cpath.is_file():
        try:
            c = torch.load(cpath, weights_only=True)
            return Dataset("imdb", c["x_train"], c["y_train"], c["x_test"], c["y_test"], 2,
                           c["embedding"])
        except Exception:  # a damaged cache is rebuilt, never trusted  # noqa: BLE001
            pass
    reviews = read_reviews(source)
    tokens = {s: [tokenize(t) for t in reviews[s][0]] for s in SPLITS}
    known = {t for toks in tokens["train"] for t in toks}
    words, vectors = load_glove(glove, known)
    vocab = build_vocab(tokens["train"], set(words), min_count)
    emb = torch.zeros(len(vocab) + 1, vectors.shape[1])
    for w, i in vocab.items():
        emb[i] = vectors[words[w]]
    out = {"embedding": emb}
    for s in SPLITS:
        out[f"x_{s}"] = torch.tensor([encode(t, vocab, max_len) for t in tokens[s]],
                                     dtype=torch.float32)
        out[f"y_{s}"] = torch.tensor(reviews[s][1], dtype=torch.long)
    if use_cache:
        try:
            cpath.parent.mkdir(parents=True, exist_ok=True)
            tmp = cpath.with_suffix(".tmp")
            torch.save(out, tmp)
            os.replace(tmp, cpath)
        except OSError:
            pass  # no writable cache: the next load tokenizes again
    return Dataset("imdb", out["x_train"], out["y_train"], out["x_test"], out["y_test"], 2, emb)


@DATASETS.register("imdb")
class IMDB(DatasetSource):
    """IMDB reviews as GloVe token ids (``aclImdb`` layout)."""

    input_shape, n_classes = (256,), 2

    @classmethod
    def load(cls, data_dir=None, embeddings: str | None = None, max_len: int = 256,
             min_count: int = 1, use_cache: bool = True) -> Dataset:
        return load_imdb(data_dir, embeddings, max_len, min_count, use_cache)
