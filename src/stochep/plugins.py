"""Parts from outside the package: import the modules that register them before a config is read.

A plugin is any importable module (or a ``.py`` file) whose import registers parts with the
registries (``NEURONS``, ``RULES``, ``COSTS``, ``DATASETS``...), as the built-in parts do. It is
named in one of three ways, all loaded before the command line and the config are built:

- ``stochep --plugin my_parts ...`` (repeatable; a module name, the current folder included,
  or a path to a ``.py`` file);
- ``STOCHEP_PLUGINS=my_parts,other`` in the environment;
- an entry point of group ``stochep.plugins`` in an installed package's ``pyproject.toml``::

      [project.entry-points."stochep.plugins"]
      my_parts = "my_package.parts"

A run records its ``--plugin`` modules in ``config.yaml`` (``plugins:``), so ``--resume``,
``stochep eval`` and the ``--nproc`` workers import them again.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "stochep.plugins"


class PluginError(ValueError):
    """A plugin could not be imported (the message names it and why)."""


def load_plugins(names) -> list[str]:
    """Import each named plugin (module name or ``.py`` path) once; returns the names."""
    names = [n for n in (names or []) if n]
    for name in names:
        _import(name)
    return names


def load_installed() -> list[str]:
    """Import the plugins of ``$STOCHEP_PLUGINS`` and of the ``stochep.plugins`` entry points."""
    names = [n.strip() for n in os.environ.get("STOCHEP_PLUGINS", "").split(",") if n.strip()]
    load_plugins(names)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken installed plugin: one line naming it
            raise PluginError(f"plugin entry point {ep.name!r} ({ep.value}) failed to import: "
                              f"{type(e).__name__}: {e}") from None
    return names


def _import(name: str) -> None:
    if name.endswith(".py") or os.sep in name:
        path = os.path.abspath(name)
        mod_name = os.path.splitext(os.path.basename(path))[0]
        if mod_name in sys.modules and getattr(sys.modules[mod_name], "__file__", None) == path:
            return
        if not os.path.isfile(path):
            raise PluginError(f"plugin file {name} does not exist")
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        _run(name, lambda: spec.loader.exec_module(module))
        return
    if name in sys.modules:
        return
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: a module in the current folder
    _run(name, lambda: importlib.import_module(name))


def _run(name: str, do) -> None:
    try:
        do()
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise PluginError(f"plugin {name!r} not found: give an importable module name (on "
                              "PYTHONPATH or in the current folder) or a path to a .py file"
                              ) from None
        raise PluginError(f"plugin {name!r} failed to import: {e}") from None
    except PluginError:
        raise
    except Exception as e:
        raise PluginError(f"plugin {name!r} failed to import: {type(e).__name__}: {e}") from None


def split_plugin_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(plugins, rest)``: the values of ``--plugin X`` / ``--plugin=X`` and the other arguments."""
    plugins, rest, it = [], [], iter(argv)
    for a in it:
        if a == "--plugin":
            value = next(it, None)
            if value is None:
                raise PluginError("--plugin needs a module name or a .py file")
            plugins.append(value)
        elif a.startswith("--plugin="):
            plugins.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return plugins, rest
