"""Artifacts: immutable folders holding one model file and its ``manifest.json``.

The id is a hash of what made the artifact (parent id, pass, canonical config, target,
tool versions), so the same inputs give the same id and lineage can be walked through
``parent`` ids. A folder appears only once complete: it is written under a temporary
name and renamed into place.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_opt.core.config import validate
from edge_opt.core.errors import ModelLoadError, printable_all
from edge_opt.core.fileio import write_json_atomic

MANIFEST = "manifest.json"
_TOOLS = (
    "edge-opt",
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "ai-edge-litert",
    "scikit-learn",
)


@dataclass(frozen=True)
class Artifact:
    folder: Path
    manifest: dict[str, Any]

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    @property
    def parent(self) -> str | None:
        return self.manifest.get("parent")

    @property
    def model_path(self) -> Path:
        return self.folder / self.manifest["model_file"]

    def summary(self) -> dict[str, Any]:
        """The artifact fields every measurement record carries."""
        m = self.manifest
        return {
            "id": m["id"],
            "path": str(self.model_path),
            "sha256": m["files"][m["model_file"]],
            "format": m["format"],
            "precision": m["precision"],
            "target": m.get("target"),
            "pass": m["pass"],
            "parent": m.get("parent"),
            "label": m.get("label", m["pass"]),
        }


def tool_versions() -> dict[str, str]:
    versions = {}
    for name in _TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)


def artifact_id(parent: str | None, pass_name: str, identity: dict[str, Any], tools: dict) -> str:
    """The hash of what made an artifact: parent, pass, every input that changes it, tool versions."""
    blob = canonical({"parent": parent, "pass": pass_name, "identity": identity, "tools": tools})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gzip_size(paths: list[Path]) -> int:
    """Size of the files gzipped at level 9: what a download or OTA update costs."""
    total = 0
    for path in paths:
        total += len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))
    return total


class ArtifactWriter:
    """Stage an artifact's files in a temporary folder, then publish it atomically.

    Usage: ``with ArtifactWriter(root, ...) as w: w.stage / "model.tflite" ...; w.publish()``.
    When an artifact with the same id exists already, ``existing`` is set and nothing is
    rebuilt.
    """

    def __init__(
        self,
        root: Path,
        *,
        parent: Artifact | None,
        pass_name: str,
        config: dict[str, Any],
        target: str | None,
        fmt: str,
        precision: str,
        model_file: str,
        label: str | None = None,
        identity: dict[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.tools = tool_versions()
        # identity: every input that changes the output (a Pass's ``identity``); by default
        # the config and target alone.
        identity = identity if identity is not None else {"config": config, "target": target}
        self.id = artifact_id(parent.id if parent else None, pass_name, identity, self.tools)
        self.final = self.root / self.id
        self.existing = load_artifact(self.final) if (self.final / MANIFEST).is_file() else None
        label = label or pass_name
        # A Keras-level transform (prune, cluster, pca, distill) names its descendants, so
        # "cluster-16+tflite-int8" is not mistaken for the plain "tflite-int8".
        if (
            parent
            and parent.format == "keras"
            and parent.manifest["pass"] not in ("train", "import", "nas", "nas-trial")
        ):
            label = f"{parent.manifest['label']}+{label}"
        self._meta = {
            "id": self.id,
            "parent": parent.id if parent else None,
            "pass": pass_name,
            "label": label,
            "config": config,
            "identity": identity,
            "target": target,
            "format": fmt,
            "precision": precision,
            "model_file": model_file,
        }
        # Who trusted the imported model's code (``--trust-model``) is recorded down the
        # lineage. It is a record only: trust is the command line's decision, never a manifest's.
        trust = parent.manifest.get("notes", {}).get("trust") if parent else None
        self.notes: dict[str, Any] = {"trust": trust} if trust else {}
        self.stage: Path | None = None

    def __enter__(self) -> ArtifactWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(prefix=f".{self.id}.", dir=self.root))
        return self

    def __exit__(self, *exc) -> None:
        if self.stage is not None and self.stage.exists():
            shutil.rmtree(self.stage, ignore_errors=True)

    def publish(self) -> Artifact:
        assert self.stage is not None
        files = sorted(p for p in self.stage.iterdir() if p.is_file())
        if not (self.stage / self._meta["model_file"]).is_file():
            raise RuntimeError(f"pass {self._meta['pass']} wrote no {self._meta['model_file']}")
        manifest = {
            **self._meta,
            "files": {p.name: sha256_file(p) for p in files},
            "size_bytes": {"raw": sum(p.stat().st_size for p in files), "gzip": gzip_size(files)},
            "tool_versions": self.tools,
            "notes": self.notes,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(self.stage / MANIFEST, manifest)
        for p in files:
            os.chmod(p, 0o444)  # immutable by convention, read-only in fact
        try:
            os.replace(self.stage, self.final)
        except OSError:  # a concurrent writer published the same id first
            if not (self.final / MANIFEST).is_file():
                raise
        self.stage = None
        return load_artifact(self.final)


_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"  # a file name inside the folder: no '/', no '..'


class _Size(BaseModel):
    model_config = ConfigDict(extra="allow")
    raw: int = Field(ge=0)
    gzip: int = Field(ge=0)


class _Manifest(BaseModel):
    """What edge-opt reads from a manifest.json; other fields are kept as they are."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    parent: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    format: Literal["keras", "tflite", "onnx", "openvino"]
    precision: str
    model_file: str = Field(pattern=_NAME)
    files: dict[Annotated[str, Field(pattern=_NAME)], str] = Field(default_factory=dict)
    notes: dict[str, Any] = Field(default_factory=dict)
    size_bytes: _Size


def load_artifact(folder: str | Path) -> Artifact:
    """Read an artifact folder; a missing, corrupt or foreign manifest is one clear error (exit 2)."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{folder}: not an artifact (no {MANIFEST})") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: corrupt manifest: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError, OSError) as exc:  # UnicodeDecodeError, an integer of 5,000 digits
        raise ModelLoadError(f"{path}: unreadable manifest: {type(exc).__name__}") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{path}: corrupt manifest: expected an object, got {type(manifest).__name__}")
    validate(_Manifest, manifest, path)
    manifest = printable_all(manifest)  # labels and notes reach the terminal as text
    manifest.setdefault("notes", {})
    manifest.setdefault("label", manifest.get("pass") or "artifact")
    manifest.setdefault("pass", "unknown")
    return Artifact(folder, manifest)


def verify(artifact: Artifact) -> list[str]:
    """Files whose hash no longer matches the manifest (an empty list means intact)."""
    return [
        name
        for name, digest in artifact.manifest["files"].items()
        if not (artifact.folder / name).is_file() or sha256_file(artifact.folder / name) != digest
    ]
