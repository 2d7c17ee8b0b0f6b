"""The linter's view of the code (ruff, configured in pyproject.toml): no unused names, no undefined
names, no likely bugs (flake8-bugbear), on the package, the tests and the benchmarks."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -r requirements.txt)")
    proc = subprocess.run([ruff, "check", "--no-cache", "imse_study", "tests", "benchmarks"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
