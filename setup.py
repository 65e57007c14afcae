"""Build hook: ship the top-level ``targets/*.yaml`` and ``benchmarks/*.yaml`` inside the package.

The checkout keeps them at the top level (the single source). A wheel (built from the
checkout or from an sdist, see MANIFEST.in) gets a copy under ``edge_opt/_builtin/<kind>/``,
where ``edge_opt.core.builtin.builtin_dir`` finds them once installed. Editable installs skip
the copy: they run from the checkout, which has the folders. All metadata is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import FileError

ROOT = Path(__file__).resolve().parent
KINDS = ("targets", "benchmarks", "devices")


class build_py_with_builtins(build_py):  # noqa: N801 - setuptools command naming
    """``build_py`` that also copies the built-in profiles and suites into the build."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest_root = Path(self.build_lib, "edge_opt", "_builtin")
        if not self.dry_run:
            shutil.rmtree(dest_root, ignore_errors=True)  # no stale profiles from an earlier build
        for src, dest in self._builtin_files():
            self.mkpath(str(dest.parent))
            self.copy_file(str(src), str(dest), preserve_mode=False)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs += [str(dest) for _, dest in self._builtin_files()]
        return outputs

    def _builtin_files(self):
        pairs = []
        for kind in KINDS:
            files = sorted((ROOT / kind).glob("*.yaml"))
            if not files:
                raise FileError(f"no {kind}/*.yaml under {ROOT}: the package would ship without built-in {kind}")
            pairs += [(f, Path(self.build_lib, "edge_opt", "_builtin", kind, f.name)) for f in files]
        return pairs


setup(cmdclass={"build_py": build_py_with_builtins})
