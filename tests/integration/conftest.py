"""One run of the quick suite, shared by every end-to-end test (the suite stays minutes on 2 cores)."""

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    proc = run_cli("run", "benchmarks/quick.yaml", "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    return out, run_dir, proc
