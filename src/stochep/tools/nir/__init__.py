"""Export to and import from NIR, the Neuromorphic Intermediate Representation (``nir`` on PyPI).

- ``graph.py``: :func:`export_nir` writes a trained network's free phase (paper eq. 7) as a NIR
  graph, :func:`load_nir` rebuilds the :class:`EPNetwork` from it;
- ``execute.py``: :func:`run_reference`, a small executor of the NIR node equations written
  here, and :func:`run_snntorch`, the same graph through snnTorch's NIR importer;
- ``measure.py``: class scores and predictions of a graph beside stochep's own.

``nir`` (and snnTorch for :func:`run_snntorch`) come with the optional extra ``stochep[nir]``;
without them each entry point says so in one line. docs/deploy.md describes the mapping.
"""
from .execute import run_reference, run_snntorch
from .graph import NIRExportError, export_nir, load_nir, require_nir

__all__ = ["NIRExportError", "export_nir", "load_nir", "require_nir", "run_reference",
           "run_snntorch"]
