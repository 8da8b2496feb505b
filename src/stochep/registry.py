"""The one registry mechanism: every kind of pluggable part has its registry here.

A part is a class registered under the name that config files and ``--set`` use::

    from stochep.rules import RULES

    @RULES.register("my-rule")
    class MyRule(LearningRule): ...

after which ``algo: my-rule`` (or ``--algo my-rule``) trains with it. The registries are filled
when their modules are imported (the built-in parts register themselves); registering is the only
way they change, and :meth:`Registry.unregister` undoes it (tests use it to clean up).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator


class Registry:
    """Name -> class of one kind of part (``kind`` names it in error messages)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: make the class available under ``name``."""
        def add(cls: type) -> type:
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered "
                                 f"({self._items[name].__name__})")
            self._items[name] = cls
            cls.name = name
            return cls
        return add

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def __getitem__(self, name: str) -> type:
        if name not in self._items:
            raise ValueError(f"{self.kind} must be one of {', '.join(self._items)}; got {name!r} "
                             "(a part of your own: register it in a module and load that with "
                             "--plugin MODULE, docs/extending.md)")
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)


# Every registry of the package. Parts register themselves where they are defined (the built-in
# ones when their module is imported); the config and the CLI find them only through these.
NEURONS = Registry("neuron")  # engine/neurons/
COSTS = Registry("cost")  # engine/costs.py
INTERACTIONS = Registry("layer")  # engine/interactions/
RULES = Registry("algo")  # rules/
DATASETS = Registry("dataset")  # data/
# Each part that owns config fields registers a check of its own section here: a function
# ``check(cfg)`` that raises ValueError naming the field (``Config.validate`` runs them all).
CONFIG_CHECKS = Registry("config check")
