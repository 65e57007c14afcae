"""Resolving an extension by name: a built-in one from its registry, or a plug-in ``module:Class``.

The one lookup behind the registries of passes, runtimes and trust checks. Importing is
lazy (a registry only says where a class lives), and what comes back is checked to be a
subclass of the extension point's base class.
"""

from __future__ import annotations

import importlib

from edge_opt.core.errors import ConfigError


def load_class(name: str, builtin: dict[str, str], base: type, kind: str, known: list[str]) -> type:
    """The class registered as ``name`` in ``builtin`` (name -> "module:Class"), or the plug-in
    ``name`` itself when it is a ``module:Class``; a ConfigError naming ``kind`` otherwise."""
    target = builtin.get(name, name)
    if ":" not in target:
        raise ConfigError(f"unknown {kind} '{name}'; known: {', '.join(known)} (or module:Class)")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{kind} '{name}' cannot be imported: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{kind} '{name}' is not an edge-opt {base.__name__} subclass ({base.__module__})")
    return cls
