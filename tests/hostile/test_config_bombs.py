"""Issue 20 (5): configuration files parsed loosely. A YAML anchor bomb expanded into an 8 GiB error
message, and a budget that is not a check passed `targets`. Each case: one line, exit 2, nothing written."""

from __future__ import annotations

import pytest
import yaml

from edge_opt.core.config import MAX_YAML_NODES, read_yaml
from edge_opt.core.errors import ConfigError
from tests import runs
from tests.conftest import ROOT, assert_clean_error, cli


def _bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs in YAML: each level an anchored list of ``width`` aliases of the one below."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_an_anchor_bomb_is_refused_before_it_expands(tmp_path, levels):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(levels))
    with pytest.raises(ConfigError, match=r"its aliases \(\*name\) expand to [\d,]+ nodes") as err:
        read_yaml(path)
    assert len(str(err.value)) < 200


def test_a_few_aliases_still_read(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {epochs: 1}\nfirst: *b\nsecond: *b\n")
    assert read_yaml(path) == {"base": {"epochs": 1}, "first": {"epochs": 1}, "second": {"epochs": 1}}
    assert 9**6 > MAX_YAML_NODES  # the smaller bomb above is already over the bound


def test_an_oversized_configuration_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: [" + "1, " * 400_000 + "1]\n")
    with pytest.raises(ConfigError, match="a configuration file is at most"):
        read_yaml(path)


@pytest.mark.parametrize("kind", ["suite", "profile", "budgets"])
def test_every_command_refuses_a_bomb_in_one_line(tmp_path, kind):
    bomb = tmp_path / f"{kind}.yaml"
    bomb.write_text(_bomb())
    run = tmp_path / "run"  # a run folder the gate reads before its budgets
    run.mkdir()
    runs.write(run, runs.results())
    args = {
        "suite": ("run", str(bomb), "--out", str(tmp_path / "out")),
        "profile": ("targets", str(bomb)),
        "budgets": ("gate", str(run), "--budgets", str(bomb)),
    }[kind]
    proc = cli(*args)
    assert proc.returncode == 2 and len(proc.stderr) < 300, proc.stderr[:500]
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def _profile(tmp_path, budgets: list) -> str:
    profile = yaml.safe_load((ROOT / "targets" / "mobile.yaml").read_text())
    profile["budgets"] = budgets
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile))
    return str(path)


def test_a_budget_that_is_not_a_check_is_refused_by_targets_and_run(tmp_path):
    path = _profile(tmp_path, ["size.raw <= 1MB", "latency is fine, trust me"])
    assert_clean_error(cli("targets", path), "field 'budgets.1': bad check 'latency is fine, trust me'")
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "tasks": [{"name": "a", "dataset": "adult"}], "targets": [path]}))
    proc = cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert_clean_error(proc, "bad check 'latency is fine, trust me'")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_long_bad_check_is_named_not_echoed(tmp_path):
    path = _profile(tmp_path, ["latency.p90 <= " + "9" * 5000 + " parsecs"])
    proc = cli("targets", path)
    assert proc.returncode == 2 and len(proc.stderr) < 400 and "characters)" in proc.stderr, proc.stderr[:500]
