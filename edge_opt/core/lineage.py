"""Lineage: the tree from the float model to every deployed file, read from manifests."""

from __future__ import annotations

from pathlib import Path

from edge_opt.core.artifacts import MANIFEST, load_artifact
from edge_opt.core.errors import BadInputError
from edge_opt.core.units import fmt_bytes


def load_manifests(run_dir: str | Path) -> dict[str, dict]:
    folder = Path(run_dir) / "artifacts"
    if not folder.is_dir():
        raise BadInputError(f"{run_dir}: no artifacts/ folder (is it a run folder?)")
    return {
        m["id"]: m for m in (load_artifact(p).manifest for p in sorted(folder.iterdir()) if (p / MANIFEST).is_file())
    }


def lineage_lines(manifests: dict[str, dict]) -> list[str]:
    """Indented lines, one per artifact, children under their parent."""
    children: dict[str | None, list[dict]] = {}
    for m in manifests.values():
        parent = m.get("parent") if m.get("parent") in manifests else None
        children.setdefault(parent, []).append(m)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for m in sorted(children.get(parent, []), key=lambda m: (m.get("target") or "", m.get("label", ""))):
            size = m["size_bytes"]
            target = f" [{m['target']}]" if m.get("target") else ""
            lines.append(
                f"{'    ' * depth}{'└── ' if depth else ''}{m.get('label', m['pass'])}{target} "
                f"({m['format']}, {m['precision']}, {fmt_bytes(size['raw'])}, gzip {fmt_bytes(size['gzip'])}) "
                f"{m['id']}"
            )
            walk(m["id"], depth + 1)

    walk(None, 0)
    if len(lines) < len(manifests):  # artifacts no walk from a root reaches: their parents loop
        lost = sorted(set(manifests) - {line.rsplit(" ", 1)[-1] for line in lines})
        raise BadInputError(f"the lineage of artifact(s) {', '.join(lost[:5])} loops (a forged or corrupt manifest)")
    return lines
