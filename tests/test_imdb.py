"""IMDB text pipeline (data/imdb.py, data/glove.py): tokenizer, vocabulary, encoding, GloVe,
loading from a folder or a .tar.gz, caching, errors, and training end to end on tiny fixtures."""
import gzip
import tarfile

import pytest
import torch
from shared_data import needs_data

from stochep.cli import main
from stochep.data import DataError, load_dataset
from stochep.data.glove import load_glove
from stochep.data.imdb import build_vocab, encode, load_imdb, tokenize
from stochep.training.config import Config
from stochep.training.trainer import Trainer

REVIEWS = {
    ("train", "pos"): ["A great, great film.<br /><br />I loved it!", "Wonderful acting; great plot.",
                       "I loved the music, it's wonderful."],
    ("train", "neg"): ["Awful. I didn't like it at all.", "Boring plot, awful acting.",
                       "The worst film; boring and awful."],
    ("test", "pos"): ["Great and wonderful.", "I loved this great film."],
    ("test", "neg"): ["Awful and boring.", "I didn't like this awful film."],
}
WORDS = ["a", "great", "film", "i", "loved", "it", "wonderful", "acting", "plot", "the", "music",
         "'s", "awful", "did", "n't", "like", "at", "all", "boring", "worst", "and", "this"]


def _glove_text(dim=4):
    g = torch.Generator().manual_seed(0)
    lines = [w + " " + " ".join(f"{v:.4f}" for v in torch.randn(dim, generator=g).tolist())
             for w in WORDS + ["unused"]]
    return "\n".join(lines) + "\n"


def _write_tree(root):
    for (split, label), texts in REVIEWS.items():
        d = root / "aclImdb" / split / label
        d.mkdir(parents=True)
        for i, t in enumerate(texts):
            (d / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(t)
    with gzip.open(root / "glove.test.4d.txt.gz", "wt") as f:
        f.write(_glove_text())
    return root


@pytest.fixture
def imdb_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STOCHEP_CACHE", str(tmp_path / "cache"))
    return _write_tree(tmp_path / "imdb")


def test_tokenizer_lowercases_strips_breaks_and_splits_clitics():
    assert tokenize("I didn't LIKE it.<br /><br />It's BAD!") == \
        ["i", "did", "n't", "like", "it", "it", "'s", "bad"]


def test_oov_words_are_dropped_before_truncation_then_padded():
    vocab = {"good": 1, "film": 2}
    assert encode(["the", "good", "xx", "film", "good"], vocab, max_len=2) == [1, 2]
    assert encode(["good", "zz"], vocab, max_len=4) == [1, 0, 0, 0]


def test_vocabulary_from_training_tokens_with_vectors_most_frequent_first():
    vocab = build_vocab([["b", "a", "b", "c"], ["b", "a"]], known={"a", "b"})
    assert vocab == {"b": 1, "a": 2}
    assert build_vocab([["b", "a", "b"]], min_count=2) == {"b": 1}


def test_glove_dimension_missing_words_and_errors(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("cat 1 2 3\ndog 4 5 6\n")
    words, vecs = load_glove(p, vocab={"dog", "bird"})
    assert words == {"dog": 0} and vecs.tolist() == [[4.0, 5.0, 6.0]]
    p.write_text("cat 1 2 3\ndog 4 5\n")
    with pytest.raises(DataError, match="line 2: 2 numbers where the first line has 3"):
        load_glove(p)
    p.write_text("cat 1 x 3\n")
    with pytest.raises(DataError, match="line 1: a value of 'cat' is not a number"):
        load_glove(p)
    with pytest.raises(DataError, match="not found"):
        load_glove(tmp_path / "none.txt")


def test_load_from_folder_and_from_tar_gz_agree(imdb_dir, tmp_path):
    d = load_imdb(imdb_dir, max_len=8)
    assert d.x_train.shape == (6, 8) and d.x_test.shape == (4, 8) and d.embedding.shape[1] == 4
    assert sorted(d.y_train.tolist()) == [0, 0, 0, 1, 1, 1] and (d.embedding[0] == 0).all()
    assert d.y_train[:3].tolist() != [0, 0, 0]  # a fixed shuffled order: prefixes mix classes
    assert torch.equal(load_imdb(imdb_dir, max_len=8, use_cache=False).x_train, d.x_train)
    assert torch.equal(d.x_train[:, 0] > 0, torch.ones(6, dtype=torch.bool))
    tar_dir = tmp_path / "tarred"
    tar_dir.mkdir()
    with tarfile.open(tar_dir / "aclImdb.tar.gz", "w:gz") as tar:
        tar.add(imdb_dir / "aclImdb", arcname="aclImdb")
    t = load_imdb(tar_dir, embeddings=imdb_dir / "glove.test.4d.txt.gz", max_len=8)
    assert torch.equal(t.x_train, d.x_train) and torch.equal(t.embedding, d.embedding)


def test_cache_is_keyed_by_every_parameter(imdb_dir, tmp_path):
    a = load_imdb(imdb_dir, max_len=8)
    assert len(list((tmp_path / "cache").glob("imdb-*.pt"))) == 1
    assert torch.equal(load_imdb(imdb_dir, max_len=8).x_train, a.x_train)  # from the cache
    b = load_imdb(imdb_dir, max_len=5)
    assert b.x_train.shape[1] == 5 and len(list((tmp_path / "cache").glob("imdb-*.pt"))) == 2
    (imdb_dir / "glove.test.4d.txt.gz").write_bytes(gzip.compress(_glove_text(3).encode()))
    assert load_imdb(imdb_dir, max_len=8).embedding.shape[1] == 3  # a changed file: rebuilt


def test_missing_data_and_vectors_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("STOCHEP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="does not exist"):
        load_imdb(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="IMDB not found"):
        load_imdb(tmp_path / "empty")
    root = _write_tree(tmp_path / "novec")
    (root / "glove.test.4d.txt.gz").unlink()
    with pytest.raises(DataError, match="no GloVe vectors found"):
        load_imdb(root)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "aclImdb.tar.gz").write_bytes(b"not a tar")
    (bad / "glove.t.txt").write_text(_glove_text())
    with pytest.raises(DataError, match="cannot read IMDB reviews"):
        load_imdb(bad)


def test_training_steps_end_to_end_on_tiny_text(imdb_dir, tmp_path):
    data = load_dataset("imdb", str(imdb_dir))
    cfg = Config(dataset="imdb", layers=[{"attention": 8}], n_perclass=2, kappa=1.0, T_free=20,
                 T_nudge=8, batch_size=3, epochs=2, val_fraction=0.0, lr=0.01,
                 calibrate_batch=6, calibrate_iters=3)
    tr = Trainer(cfg, data, str(tmp_path / "run"), progress=False)
    w0 = tr.net.interactions[0].weight.detach().clone()
    tr.fit()
    assert not torch.equal(tr.net.interactions[0].weight, w0)
    assert 0 <= tr.history[-1]["test_acc"] <= 1 and len(tr.history) == 2
    # resume from the checkpoint (the embedding travels with the model)
    again = Trainer.from_run(str(tmp_path / "run"), epochs=3, data_dir=str(imdb_dir))
    assert torch.equal(again.net.interactions[0].embedding, tr.net.interactions[0].embedding)
    again.fit()
    assert again.epoch == 3


def test_memory_tool_measures_the_attention_net():
    from stochep.tools.memory import measure_step_memory
    from stochep.training.presets import load_preset

    cfg = load_preset("imdb-1ha1fc")
    cfg.layers, cfg.T_free, cfg.T_nudge, cfg.n_perclass = [{"attention": 16}], 10, 5, 10
    assert measure_step_memory(cfg, "ep", 4)["peak_bytes"] > 0


@pytest.mark.slow
def test_gradcheck_on_real_reviews(capsys):
    root = needs_data("imdb")
    assert main(["gradcheck", "--preset", "imdb-1ha1fc", "--narrow", "8", "--data-dir", str(root),
                 "--batch", "4", "--T", "300"]) == 0
    assert "cosine_min=1.0" in capsys.readouterr().out
