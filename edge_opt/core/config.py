"""YAML loading with errors that name the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edge_opt.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """The base of every configuration model (suite, profile, device, search space, pass options):
    an unknown field is an error, a model is frozen once read, and no number is NaN or infinite
    (``gt=0`` alone lets ``.inf`` through; each field still bounds its own range)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: A configuration file larger than this is refused: a suite, profile or budgets file is a few KB.
MAX_YAML_BYTES = 1_000_000
#: The most nodes a configuration may hold once its aliases (``*name``) are expanded: a few
#: aliases are handy, an anchor bomb expands nine aliases nine levels deep into billions.
MAX_YAML_NODES = 100_000


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a configuration file is at most {MAX_YAML_BYTES:,}")
    try:
        data = _safe_load(path.read_text(encoding="utf-8"), path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a configuration") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _safe_load(text: str, path: Path):
    """``yaml.safe_load``, refusing a document whose aliases would expand beyond MAX_YAML_NODES
    (the node graph is composed with aliases shared, and its expanded size counted before any
    Python object is built)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes = _expanded(node, {})
        if nodes > MAX_YAML_NODES:
            raise ConfigError(
                f"{path}: its aliases (*name) expand to {nodes:,} nodes; a configuration may hold {MAX_YAML_NODES:,}"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded(node, memo: dict[int, int]) -> int:
    """Nodes under ``node`` with every alias expanded (each shared node counted once per use)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a node that contains itself (a recursive alias) counts once
    if isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded(k, memo) + _expanded(v, memo) for k, v in node.value)
    else:
        total = 1
    memo[key] = total
    return total


def validate(model: type[M], data: dict, source: str | Path) -> M:
    """Validate ``data`` into ``model``; the first problem becomes one clear line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # An unknown field explains a "missing" one (a typo), so name it first.
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_fields(model, err["loc"][:-1])
            msg = f"unknown field; allowed: {', '.join(allowed)}" if allowed else "unknown field"
        raise ConfigError(f"{source}: field '{field}': {msg}") from None


def load_model(model: type[M], path: str | Path) -> M:
    return validate(model, read_yaml(path), path)


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Walk ``loc`` through nested models to list the fields allowed at that level."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _model_in(field.annotation)
    return sorted(current.model_fields) if current else []


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found:
            return found
    return None
