"""Issue 20 (9): a profile or suite naming a plug-in ``module:Class`` imports that module (runs its
code) only when the user allowed it: ``EDGE_OPT_PLUGINS`` or the command line's own ``--runtime``.
Before, validating a profile imported any module it named."""

from __future__ import annotations

import os
import sys

import pytest
import yaml

from tests.conftest import ROOT, assert_clean_error, cli

PAYLOAD = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from edge_opt.runtimes.null import NullBackend
from edge_opt.passes.base import Pass


class Evil(NullBackend):
    name = "evil"


class EvilPass(Pass):
    name = "evil-pass"
"""


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A module with code that runs at import (it writes a marker), importable from tmp_path under a
    name of its own; the allow-list starts empty and is put back after."""
    from edge_opt.core import plugins

    marker = tmp_path / "imported"
    (tmp_path / "evilmod.py").write_text(PAYLOAD.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))  # this process (in-process commands) ...
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))  # workers
    monkeypatch.setenv("EDGE_OPT_PLUGINS", "tests.plugins")
    monkeypatch.setattr(plugins, "_ALLOWED", set())
    monkeypatch.delitem(sys.modules, "evilmod", raising=False)
    yield marker
    sys.modules.pop("evilmod", None)


def _profile(tmp_path, change) -> str:
    profile = yaml.safe_load((ROOT / "targets" / "cpu.yaml").read_text())
    profile["name"] = "cpu-plugin"
    change(profile)
    path = tmp_path / "cpu-plugin.yaml"
    path.write_text(yaml.safe_dump(profile))
    return str(path)


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (lambda p: p["runtimes"].append({"runtime": "evilmod:Evil"}), "runtime 'evilmod:Evil'"),
        (lambda p: p["pipelines"].append([{"pass": "evilmod:EvilPass"}]), "pass 'evilmod:EvilPass'"),
    ],
)
def test_a_profile_naming_a_plugin_imports_nothing_unless_allowed(tmp_path, evil, change, kind):
    profile = _profile(tmp_path, change)
    proc = cli("targets", profile)
    assert_clean_error(proc, f"{kind} is a plug-in, and edge-opt imports no module it was not allowed to")
    assert "set EDGE_OPT_PLUGINS=evilmod" in proc.stderr
    assert not evil.exists() and "evilmod" not in sys.modules  # its code never ran

    os.environ["EDGE_OPT_PLUGINS"] = "tests.plugins,evilmod"  # the user trusts it: it is imported and used
    proc = cli("targets", profile)
    assert evil.exists(), proc.stderr


def test_a_suite_whose_target_names_a_plugin_is_refused_before_any_work(tmp_path, evil):
    suite = yaml.safe_load((ROOT / "benchmarks" / "quick.yaml").read_text())
    suite["tasks"][0]["model"] = suite["tasks"][0]["model"]["baseline"]
    suite["targets"] = [_profile(tmp_path, lambda p: p["runtimes"].append({"runtime": "evilmod:Evil"}))]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    proc = cli("run", path, "--out", tmp_path / "out")
    assert_clean_error(proc, "runtime 'evilmod:Evil' is a plug-in")
    assert not evil.exists() and not (tmp_path / "out").exists()


def test_a_runtime_typed_on_the_command_line_is_the_users_choice(tmp_path, evil, tiny_artifacts):
    model = tiny_artifacts["tflite"].model_path
    proc = cli("bench", model, "--runtime", "evilmod:Evil", "--min-time", "0", "--runs", "3")
    assert evil.exists(), proc.stderr  # imported on the user's word, with no allow-list
