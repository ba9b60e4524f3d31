"""The examples run and do what they claim, at a reduced size."""

from __future__ import annotations

import ast
import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_qmix_custom_loop_uses_no_runner_and_learns_the_lesson():
    path = EXAMPLES / "qmix_custom_loop.py"
    imported = {node.module for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom)}
    assert not imported & {"jaxmarl_lab.runner", "jaxmarl_lab.replay", "jaxmarl_lab.runs.training"}
    result = _load("qmix_custom_loop").main(num_iterations=150, seed=0, verbose=False)
    # Untrained, the greedy policy never finishes in 50 steps: -0.01 per step per agent.
    assert result["before"] == pytest.approx(-0.50, abs=1e-5)
    # Trained: the lesson's optimum, 3 steps (breadth-first solver), return 1 - 3 * 0.01.
    assert result["steps"] == 3
    assert result["after"] == pytest.approx(0.97, abs=1e-5)
    losses = np.asarray(result["losses"])
    assert np.all(np.isfinite(losses)) and losses[-10:].mean() < losses[:10].mean()
