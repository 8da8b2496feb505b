"""Where the real datasets kept beside the project (../shared/data) are, for tests."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data(name: str) -> Path:
    """``$STOCHEP_<NAME>_DIR``, else ``shared/data/<name>`` beside the checkout or an ancestor of
    it, else the workplace's ``/work/shared/data/<name>``."""
    env = os.environ.get(f"STOCHEP_{name.upper().replace('-', '_')}_DIR")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "data" / name for p in ROOT.parents]
    candidates.append(Path("/work/shared/data") / name)
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def needs_data(name: str) -> Path:
    """The shared dataset ``name``; without it the calling test skips with a one-line reason, or
    fails where ``STOCHEP_REQUIRE_DATA=1`` (CI has the data and must run these tests)."""
    path = shared_data(name)
    if not path.is_dir():
        msg = (f"needs the real {name} data at ../shared/data/{name} "
               f"(or $STOCHEP_{name.upper().replace('-', '_')}_DIR)")
        if os.environ.get("STOCHEP_REQUIRE_DATA") == "1":
            pytest.fail(msg + "; STOCHEP_REQUIRE_DATA=1 requires it")
        pytest.skip(msg)
    return path
