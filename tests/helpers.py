"""Helpers shared by several test modules (not tests themselves): the one-line error check of
the CLI and tiny DVS Gesture recordings in Tonic's layout."""
import numpy as np


def assert_one_line_error(res, *needles):
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


# ---- DVS Gesture in Tonic's layout ----
TRAIN = {"user01_fluorescent": [0, 3, 10], "user02_led": [1, 3]}
TEST = {"user24_lab": [2, 5], "user25_natural": [7]}


def random_recording(rng, n=None):
    n = n or int(rng.integers(30, 120))
    t = np.sort(rng.uniform(0, 6000.0, n))  # ms
    return np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                     t], axis=1).astype(np.float64)


def write_tonic(root, seed=0):
    """Tiny recordings in Tonic's layout under root/DVSGesture; return {path: label}."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, users in (("ibmGestureTrain", TRAIN), ("ibmGestureTest", TEST)):
        for user, labels in users.items():
            d = root / "DVSGesture" / split / user
            d.mkdir(parents=True)
            for label in labels:
                np.save(d / f"{label}.npy", random_recording(rng))
                out[d / f"{label}.npy"] = label
    return out


# ---- small runs ----
# the network most tests train: a digits epoch takes about a second. Tests that need more epochs
# say so ({**TINY, "epochs": 3}); TINY_ARGS is the same for the command line
TINY = {"layers": [32], "T_free": 8, "T_nudge": 4, "epochs": 1, "batch_size": 64}
TINY_ARGS = ["--set", "layers=[32]", "--set", "T_free=8", "--set", "T_nudge=4",
             "--batch-size", "64"]


# ---- docs/extending.md, the tutorial whose code blocks the tests run ----
def doc_blocks(path, lang):
    """The ```lang code blocks of a Markdown file, in order."""
    import re
    from pathlib import Path

    text = Path(path).read_text()
    return [m.group(1) for m in re.finditer(rf"^```{lang}\n(.*?)^```$", text, re.M | re.S)]


def write_tutorial_plugin(folder):
    """docs/extending.md's module (its first four Python blocks) as folder/my_parts.py, and
    the tutorial's training command."""
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
    blocks = doc_blocks(doc, "python")
    (Path(folder) / "my_parts.py").write_text("\n\n\n".join(blocks[:4]) + "\n")
    return doc_blocks(doc, "bash")[0].strip(), blocks[4]
