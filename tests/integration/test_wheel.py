"""A wheel carries the target profiles and suites: install it into a fresh venv, run edge-opt outside the checkout.

The heavy dependencies are not reinstalled: a .pth file in the new venv points at this
interpreter's site-packages. Only the built wheel goes into the venv itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

PROFILES = sorted(p.stem for p in (ROOT / "targets").glob("*.yaml"))
SUITES = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.yaml"))
DEVICES = sorted(p.stem for p in (ROOT / "devices").glob("*.yaml"))
# What a build of the checkout reads; the rest (envs, caches, earlier builds, reports) stays behind.
_SKIP = shutil.ignore_patterns(
    ".git", ".tox", ".venv", "venv", "build", "dist", "*.egg-info", "_builtin", "reports", "__pycache__", ".*_cache"
)


def _run(cmd: list, *, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (proc.args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def _clean_env() -> dict[str, str]:
    """The environment of a user's shell: nothing that points Python at the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "VIRTUAL_ENV", "EDGE_OPT_DEBUG"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """sdist and wheels of a copy of the checkout (so the build leaves nothing in the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_SKIP)
    sdist_dir, wheel_dir, wheel_from_sdist_dir = tmp / "sdist", tmp / "wheels", tmp / "wheels-from-sdist"
    build_sdist = "import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])"
    _ok(_run([sys.executable, "-c", build_sdist, sdist_dir], cwd=src, timeout=180))
    (sdist,) = sdist_dir.glob("*.tar.gz")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w"]
    _ok(_run([*pip_wheel, wheel_dir, src], cwd=tmp, timeout=180))
    _ok(_run([*pip_wheel, wheel_from_sdist_dir, sdist], cwd=tmp, timeout=180))
    (wheel,) = wheel_dir.glob("*.whl")
    (wheel_from_sdist,) = wheel_from_sdist_dir.glob("*.whl")
    return {"tmp": tmp, "sdist": sdist, "wheel": wheel, "wheel_from_sdist": wheel_from_sdist}


@pytest.fixture(scope="module")
def venv(built):
    """A fresh venv with only the wheel installed; the dependencies come from this interpreter's site-packages."""
    import pip

    assert tuple(int(x) for x in pip.__version__.split(".")[:2]) >= (22, 3), f"pip {pip.__version__}: needs >= 22.3"
    tmp = built["tmp"]
    root = tmp / "venv"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", root], cwd=tmp))
    python = root / "bin" / "python"
    site = Path(
        _ok(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp)).stdout.strip()
    )
    ours = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))  # ordered, no duplicates
    (site / "_edge_opt_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    # --ignore-installed: this interpreter's (editable) edge-opt is visible through the .pth; leave it alone.
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--ignore-installed"]
    _ok(_run([*install, built["wheel"]], cwd=tmp, timeout=180))
    work = tmp / "work"  # outside the checkout
    work.mkdir()
    return {"root": root, "python": python, "bin": root / "bin", "work": work, "env": _clean_env()}


@pytest.mark.slow
def test_sdist_and_wheels_carry_profiles_and_suites(built):
    with tarfile.open(built["sdist"]) as tar:
        members = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {"setup.py", "MANIFEST.in"} <= members
    assert {f"targets/{p}.yaml" for p in PROFILES} | {f"benchmarks/{s}.yaml" for s in SUITES} <= members
    names = {}
    for key in ("wheel", "wheel_from_sdist"):
        with zipfile.ZipFile(built[key]) as whl:
            names[key] = {n for n in whl.namelist() if ".dist-info/" not in n}
    assert names["wheel"] == names["wheel_from_sdist"]
    shipped = {n for n in names["wheel"] if n.startswith("edge_opt/_builtin/")}
    assert shipped == {f"edge_opt/_builtin/targets/{p}.yaml" for p in PROFILES} | {
        f"edge_opt/_builtin/benchmarks/{s}.yaml" for s in SUITES
    } | {f"edge_opt/_builtin/devices/{d}.yaml" for d in DEVICES}
    assert {f"devices/{d}.yaml" for d in DEVICES} <= members
    assert PROFILES == ["cpu", "edgetpu", "gpu", "mobile", "mobile-fair"] and {
        "quick",
        "default",
        "remediation",
    } <= set(SUITES)
    assert {"edge_opt/schemas/results.schema.json", "edge_opt/schemas/report.schema.json"} <= names["wheel"]


@pytest.mark.slow
def test_installed_package_is_the_venvs_and_reads_its_own_copies(venv):
    code = (
        "import edge_opt, json\n"
        "from edge_opt.core.builtin import builtin_dir\n"
        "from edge_opt.run.suite import default_suite_path, load_suite\n"
        "print(json.dumps({'file': edge_opt.__file__, 'targets': str(builtin_dir('targets')),"
        " 'benchmarks': str(builtin_dir('benchmarks')), 'default': str(default_suite_path()),"
        " 'quick': load_suite('quick').name}))"
    )
    proc = _ok(_run([venv["python"], "-c", code], cwd=venv["work"], env=venv["env"]))
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found.pop("quick") == "quick"
    root = venv["root"].resolve()
    for key, path in found.items():
        path = Path(path).resolve()
        assert path.is_relative_to(root) and not path.is_relative_to(ROOT), (key, path)
    assert Path(found["targets"]).parts[-2:] == ("_builtin", "targets")


@pytest.mark.slow
def test_targets_lists_the_packaged_profiles(venv):
    proc = _ok(_run([venv["bin"] / "edge-opt", "targets"], cwd=venv["work"], env=venv["env"]))
    listed = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert listed == PROFILES, proc.stdout


@pytest.mark.slow
def test_run_works_from_the_packaged_suite_and_profiles(venv):
    edge_opt, work, env = venv["bin"] / "edge-opt", venv["work"], venv["env"]
    assert "--out" in _ok(_run([edge_opt, "run", "--help"], cwd=work, env=env)).stdout
    # The packaged quick suite takes about a minute on 2 cores (four targets, trust checks);
    # the run has no option to pick targets, so this is that suite cut to the cpu profile
    # without checks (~30 s, still every cpu runtime). The profile comes from the package.
    where = "from edge_opt.core.builtin import builtin_dir; print(builtin_dir('benchmarks'))"
    packaged = Path(_ok(_run([venv["python"], "-c", where], cwd=work, env=env)).stdout.strip())
    suite = yaml.safe_load((packaged / "quick.yaml").read_text())
    task = suite["tasks"][0]
    if task["model"].get("kind") == "nas":  # its search is for mobile: cut to cpu, the baseline alone
        task["model"] = task["model"]["baseline"]
    # The packaged cpu profile, cut to one thread and the float file of each format: every runtime
    # of the package still loads and measures (the whole profile is the quick suite's, above).
    cpu = yaml.safe_load((packaged.parent / "targets" / "cpu.yaml").read_text())
    cpu.update(threads=[1], pipelines=[[{"pass": "tflite", "precision": "fp32"}], [{"pass": "onnx"}],
                                       [{"pass": "onnx"}, {"pass": "openvino"}]])  # fmt: skip
    (work / "cpu-cut.yaml").write_text(yaml.safe_dump(cpu, sort_keys=False))
    suite.update(
        name="quick-cpu",
        targets=[str(work / "cpu-cut.yaml")],
        checks={"fairness": None, "robustness": None, "explain": None, "edgetpu": False, "ops": None, "debug": None},
    )
    (work / "quick-cpu.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    _ok(_run([edge_opt, "run", "quick-cpu.yaml", "--out", "out", "--quiet"], cwd=work, env=env, timeout=300))
    (run_dir,) = [p for p in (work / "out").iterdir() if (p / "results.json").is_file()]
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["targets"]) == ["cpu"]  # the profile's own name
    recs = results["measurements"]
    assert not [r for r in recs if r["status"] == "failed"], [r["error"] for r in recs if r["status"] == "failed"]
    ok = {r["runtime"]["name"] for r in recs if r["status"] == "ok" and r["target"] == "cpu"}
    assert {"litert", "onnxruntime", "openvino"} <= ok, ok


# builtin_dir's choice, without building anything.


def test_builtin_dir_prefers_the_checkout(tmp_path, monkeypatch):
    from edge_opt.core import builtin

    (tmp_path / "pyproject.toml").write_text("")
    for kind in ("targets", "benchmarks"):
        (tmp_path / kind).mkdir()
        (tmp_path / "edge_opt" / "_builtin" / kind).mkdir(parents=True)
    monkeypatch.setattr(builtin, "_PACKAGE", tmp_path / "edge_opt")
    assert builtin.builtin_dir("targets") == tmp_path / "targets"
    assert builtin.builtin_dir("benchmarks") == tmp_path / "benchmarks"
    (tmp_path / "pyproject.toml").unlink()  # not a checkout: the packaged copy
    assert builtin.builtin_dir("targets") == tmp_path / "edge_opt" / "_builtin" / "targets"
    with pytest.raises(ValueError, match="kind must be one of"):
        builtin.builtin_dir("models")


def test_builtin_dir_missing_is_a_one_line_config_error(tmp_path, monkeypatch):
    from edge_opt.core import builtin
    from edge_opt.core.errors import ConfigError
    from edge_opt.targets import available_profiles

    monkeypatch.setattr(builtin, "_PACKAGE", tmp_path / "edge_opt")
    with pytest.raises(ConfigError, match=r"no built-in targets found \(looked in .*_builtin.*targets\)") as err:
        available_profiles()
    assert "\n" not in str(err.value)
