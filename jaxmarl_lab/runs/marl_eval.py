"""Export evaluation results in marl-eval's raw-data JSON format.

marl-eval (InstaDeep, Gorsane et al. 2022) aggregates results stored as

    {env_name: {task_name: {algorithm_name: {"run_<seed>": {
        "step_1": {"step_count": int, "return": [one value per evaluation episode]},
        ...,
        "absolute_metrics": {"return": [10 x as many episodes]}}}}}}

with `absolute_metrics` the last key of each run. jaxmarl-lab keeps only the final
checkpoint of a run, so each run has one logged step, the greedy evaluation of its
final policy after `step_count` env steps, and `absolute_metrics` is that same final
policy scored on ten times as many (different) episodes; marl-eval's own "absolute
metric" is the best policy seen during training, which needs intermediate checkpoints.

    results = [evaluate_run(d, K) for d in run_dirs]
    absolute = [evaluate_run(d, 10 * K, seed=...) for d in run_dirs]
    write_marl_eval("results.json", marl_eval_data(results, absolute))
"""

from __future__ import annotations

from typing import Any

from jaxmarl_lab.runs.files import atomic_write_json


def task_name(result: dict) -> str:
    """marl-eval's task: the env's options and params, e.g. `num_agents=3`, or `default`."""
    items = {**result.get("env_kwargs", {}), **result.get("env_params", {})}
    return ",".join(f"{k}={items[k]}" for k in sorted(items)) or "default"


def marl_eval_data(results: list[dict], absolute: list[dict]) -> dict:
    """Nested marl-eval data of `evaluation.evaluate_run` results, one run per seed.

    Args:
        results: one evaluation per run directory (each with `returns (S, K)`).
        absolute: the same run directories evaluated with 10 x K episodes, in the same order.

    Raises:
        ValueError: if the lists differ in length or order, or two results claim the
            same (env, task, algorithm, seed), naming both run directories.
    """
    if len(results) != len(absolute):
        raise ValueError(f"marl-eval export needs one absolute evaluation per result, got {len(results)} results "
                         f"and {len(absolute)} absolute evaluations")
    data: dict = {}
    owner: dict = {}
    for res, abs_res in zip(results, absolute):
        if abs_res["run_dir"] != res["run_dir"]:
            raise ValueError(f"absolute evaluation of {abs_res['run_dir']!r} does not match {res['run_dir']!r}")
        algorithms = data.setdefault(res["env"], {}).setdefault(task_name(res), {})
        runs = algorithms.setdefault(res["learner"], {})
        for i, seed in enumerate(res["seeds"]):
            key = (res["env"], task_name(res), res["learner"], seed)
            if key in owner:
                raise ValueError(f"{res['run_dir']!r} and {owner[key]!r} both hold seed {seed} of {res['learner']} "
                                 f"on {res['env']} ({task_name(res)}); marl-eval needs one run per seed")
            owner[key] = res["run_dir"]
            runs[f"run_{seed}"] = {
                "step_1": {"step_count": int(res["env_steps"]), "return": [float(x) for x in res["returns"][i]]},
                "absolute_metrics": {"return": [float(x) for x in abs_res["returns"][i]]},
            }
    return data


def check_marl_eval(data: Any) -> None:
    """Checks `data` against marl-eval's documented raw-data structure.

    Raises:
        ValueError: naming the first path that breaks it.
    """
    def need(cond: bool, path: str, what: str) -> None:
        if not cond:
            raise ValueError(f"marl-eval data at {path}: {what}")

    need(isinstance(data, dict) and bool(data), "top level", "needs a non-empty {env_name: ...} object")
    for env, tasks in data.items():
        need(isinstance(tasks, dict) and bool(tasks), env, "needs {task_name: ...}")
        for task, algos in tasks.items():
            need(isinstance(algos, dict) and bool(algos), f"{env}/{task}", "needs {algorithm_name: ...}")
            for algo, runs in algos.items():
                need(isinstance(runs, dict) and bool(runs), f"{env}/{task}/{algo}", "needs {run_name: ...}")
                for run, steps in runs.items():
                    _check_run(steps, f"{env}/{task}/{algo}/{run}", need)


def _check_run(steps: Any, path: str, need) -> None:
    need(isinstance(steps, dict) and len(steps) >= 2, path, "needs step_<i> entries and absolute_metrics")
    keys = list(steps)
    need(keys[-1] == "absolute_metrics", path, f"the last key must be absolute_metrics, got {keys[-1]!r}")
    metrics = None
    for step in keys[:-1]:
        entry = steps[step]
        need(step.startswith("step_") and step[5:].isdigit(), f"{path}/{step}", "step keys are step_<int>")
        need(isinstance(entry, dict) and isinstance(entry.get("step_count"), int), f"{path}/{step}",
             "needs an integer step_count")
        names = sorted(k for k in entry if k != "step_count")
        need(metrics is None or names == metrics, f"{path}/{step}", "every step must log the same metrics")
        metrics = names
        for name in names:
            need(_numbers(entry[name]), f"{path}/{step}/{name}", "must be a non-empty list of numbers")
    absolute = steps["absolute_metrics"]
    need(isinstance(absolute, dict) and sorted(absolute) == metrics, f"{path}/absolute_metrics",
         f"must log the steps' metrics {metrics}")
    for name in metrics:
        need(_numbers(absolute[name]), f"{path}/absolute_metrics/{name}", "must be a non-empty list of numbers")


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def write_marl_eval(path: str, data: dict) -> None:
    """Checks `data` and writes it to `path` atomically (temporary file + rename)."""
    check_marl_eval(data)
    atomic_write_json(path, data)
