"""Measuring and reporting tools built on the library: gradient checks (``gradcheck.py``),
gradient-quality diagnosis (``diagnose.py``), memory (``memory.py``, ``memory_report.py``),
energy and operation counts (``energy.py``), seed sweeps (``sweep.py``), paper-table
reproduction (``reproduce.py``) and the figure analyses (``analysis/``)."""
