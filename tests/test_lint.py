"""The tree stays clean under the small ruff rule set in pyproject.toml (pyflakes, pycodestyle, import order)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the test extra: pip install -e '.[test]'")
def test_ruff_is_clean():
    result = subprocess.run(["ruff", "check", "--output-format", "concise", ROOT], capture_output=True, text=True,
                            cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
