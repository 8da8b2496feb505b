"""Give result JSONs written before results recorded their provenance a ``commit`` and ``date``.

For each ``benchmarks/results/*.json`` without a ``commit`` field, the commit is the one that
last wrote the file, found in git history, and ``date`` is that commit's date. The run itself
used the code at or before that commit, which ``provenance`` says in the file. Files that record
their commit already (``stochep.tools.results.write_json``) are left alone.

    python benchmarks/provenance_backfill.py [--rev REV]

``--rev REV`` looks the files up in REV's history instead of HEAD's: for results produced on a
branch (in a worktree) and brought onto main later, the branch's commit is the code they ran.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

NOTE = ("backfilled from git history: commit is the commit that last wrote this file; the run "
        "used the code at or before it")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", default="HEAD", help="whose history to look the files up in")
    rev = p.parse_args(argv).rev
    changed = 0
    for path in sorted(Path("benchmarks/results").glob("*.json")):
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("commit"):
            continue
        log = subprocess.run(["git", "log", "-1", "--format=%H %cI", rev, "--", str(path)],
                             capture_output=True, text=True, check=True).stdout.split()
        if not log:
            print(f"{path}: not in git history; skipped", file=sys.stderr)
            continue
        commit, date = log
        data = {"commit": commit, "date": data.get("date", date), "provenance": NOTE, **data}
        path.write_text(json.dumps(data, indent=2) + "\n")
        changed += 1
    print(f"backfilled {changed} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
