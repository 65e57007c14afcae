"""Resolving an extension by name: a built-in one from its registry, or a plug-in ``module:Class``.

The one lookup behind the registries of passes, runtimes and trust checks. Importing is
lazy (a registry only says where a class lives), and what comes back is checked to be a
subclass of the extension point's base class.

Importing a module runs its code, and a profile or suite may come from anywhere: a plug-in is
imported only when its module is allowed, by the ``EDGE_OPT_PLUGINS`` allow-list (module names,
comma-separated; a package allows its submodules) or by :func:`allow` (what the user typed on the
command line, or a program that calls it). Anything else is refused before it is imported.
"""

from __future__ import annotations

import importlib
import os

from edge_opt.core.errors import ConfigError


def load_class(name: str, builtin: dict[str, str], base: type, kind: str, known: list[str]) -> type:
    """The class registered as ``name`` in ``builtin`` (name -> "module:Class"), or the plug-in
    ``name`` itself when it is a ``module:Class``; a ConfigError naming ``kind`` otherwise."""
    target = builtin.get(name, name)
    if ":" not in target:
        raise ConfigError(f"unknown {kind} '{name}'; known: {', '.join(known)} (or module:Class)")
    module, _, attr = target.partition(":")
    if name not in builtin and not allowed(module):
        raise ConfigError(
            f"{kind} '{name}' is a plug-in, and edge-opt imports no module it was not allowed to (its code would run): "
            f"if you trust it, set EDGE_OPT_PLUGINS={module.partition('.')[0]}"
        )
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{kind} '{name}' cannot be imported: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{kind} '{name}' is not an edge-opt {base.__name__} subclass ({base.__module__})")
    return cls


_ALLOWED: set[str] = set()


def allow(module: str) -> None:
    """Let plug-ins from ``module`` (and its submodules) be imported in this process."""
    _ALLOWED.add(module.partition(":")[0])


def allowed(module: str) -> bool:
    """Whether ``module`` is on the allow-list: ``EDGE_OPT_PLUGINS`` or :func:`allow`."""
    names = _ALLOWED | {m.strip() for m in os.environ.get("EDGE_OPT_PLUGINS", "").split(",") if m.strip()}
    return any(module == name or module.startswith(name + ".") for name in names)
