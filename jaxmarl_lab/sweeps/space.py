"""Sweep files and search spaces: what `jaxmarl-lab sweep` reads and the points it expands to.

See `jaxmarl_lab.sweeps.run` for the file format; this module parses a sweep file into a
`SweepSpec`, its `search` table into `Dimension`s (each resolved to a field of the learner's
HParams, Config or RunnerConfig), and those into points, before anything is traced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from typing import Any, NamedTuple

import numpy as np

from jaxmarl_lab.runner import RunnerConfig
from jaxmarl_lab.runs.config import LEARNERS, RunConfig, learner_names, read_config_file

SWEEP_KEYS = ("search", "mode", "num_samples", "sample_seed", "eval_episodes")
SECTIONS = ("hparams", "config", "runner")
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform")
AXIS = "members"
MAX_POINTS = 1_000_000  # a sweep's points; each is a row per seed, rewritten to results.json after every chunk
MAX_EVAL_EPISODES = 100_000  # greedy episodes per member (run inside the member's program)
MAX_MEMBERS = 10_000_000  # points x seeds: the done mask, the seed keys and the rows are held in memory


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A base run and a search space; validated on construction (names and values in `parse_search`)."""

    base: RunConfig
    search: dict  # {name: list of values | {distribution: [lo, hi], "num": n}}
    mode: str = "grid"  # "grid" or "random"
    num_samples: int | None = None  # points of a random sweep
    sample_seed: int = 0  # NumPy seed of the random draws
    eval_episodes: int = 32  # greedy episodes of every member's final policy (0: no greedy evaluation)

    def __post_init__(self):
        if not isinstance(self.search, dict) or not self.search:
            raise ValueError(f"sweep 'search' is empty: it must name at least one hyperparameter with its "
                             f"values, e.g. {{\"lr\": [1e-3, 3e-3]}}; got {self.search!r}")
        if self.mode not in ("grid", "random"):
            raise ValueError(f"sweep 'mode' must be 'grid' or 'random', got {self.mode!r}")
        if self.mode == "random" and (not _is_int(self.num_samples) or not 1 <= self.num_samples <= MAX_POINTS):
            raise ValueError(f"sweep 'num_samples' must be an integer in [1, {MAX_POINTS:,}] for mode 'random', "
                             f"got {self.num_samples!r}")
        if self.mode == "grid" and self.num_samples is not None:
            raise ValueError(f"sweep 'num_samples' ({self.num_samples!r}) is only for mode 'random'")
        if not _is_int(self.sample_seed):
            raise ValueError(f"sweep 'sample_seed' must be an integer, got {self.sample_seed!r}")
        if not _is_int(self.eval_episodes) or not 0 <= self.eval_episodes <= MAX_EVAL_EPISODES:
            raise ValueError(f"sweep 'eval_episodes' must be an integer in [0, {MAX_EVAL_EPISODES:,}] (greedy "
                             f"episodes per member; 0: none), got {self.eval_episodes!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "SweepSpec":
        """Splits a sweep file's keys into the base RunConfig and the search; unknown keys are refused."""
        valid = [f.name for f in dataclasses.fields(RunConfig)] + list(SWEEP_KEYS)
        unknown = set(values) - set(valid)
        if unknown:
            raise ValueError(f"unknown sweep keys {sorted(unknown)}; valid: {valid}")
        values = dict(values)
        sweep = {k: values.pop(k) for k in SWEEP_KEYS if k in values}
        sweep.setdefault("search", {})
        return cls(base=RunConfig.from_dict(values), **sweep)

    def to_dict(self) -> dict:
        return {**self.base.to_dict(), "search": self.search, "mode": self.mode,
                "num_samples": self.num_samples, "sample_seed": self.sample_seed, "eval_episodes": self.eval_episodes}

    def fingerprint(self) -> str:
        """A hash of the sweep's content, to match partial results with the sweep that wrote them."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def load_sweep(path: str) -> SweepSpec:
    """Reads a `.json` or `.toml` sweep file. Raises ValueError naming the file on bad content."""
    values = read_config_file(path, "sweep file")
    return SweepSpec.from_dict(values)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


class Dimension(NamedTuple):
    """One searched name."""

    key: str  # the name as written in `search` (the column name of the results)
    section: str  # "hparams", "config" or "runner"
    field: str  # the field within the section
    values: tuple | None  # explicit values, or None for a distribution
    distribution: str | None  # "uniform", "log_uniform" or "int_uniform"
    low: float | None
    high: float | None
    num: int | None  # grid points of a distribution


def _section_fields(learner: str) -> dict[str, list[str]]:
    entry = LEARNERS[learner]
    return {"hparams": list(entry.hparams_cls._fields),
            "config": [f.name for f in dataclasses.fields(entry.config_cls)],
            "runner": [f.name for f in dataclasses.fields(RunnerConfig)]}


def _resolve(key: str, fields: dict[str, list[str]], learner: str) -> tuple[str, str]:
    section, _, field = key.rpartition(".")
    sections = [section] if section else [s for s in SECTIONS if field in fields[s]]
    if not sections or sections[0] not in SECTIONS or field not in fields[sections[0]]:
        listing = "; ".join(f"{s}: {', '.join(fields[s])}" for s in SECTIONS)
        raise ValueError(f"search name {key!r} is not a hyperparameter, config or runner field of learner "
                         f"{learner!r}; valid names ({listing})")
    if len(sections) > 1:
        raise ValueError(f"search name {key!r} is ambiguous ({' and '.join(sections)}); write "
                         f"{' or '.join(s + '.' + field for s in sections)}")
    return sections[0], field


def _parse_dimension(key: str, section: str, field: str, raw: Any, mode: str) -> Dimension:
    if isinstance(raw, (list, tuple)):
        if not raw:
            raise ValueError(f"search {key!r} has an empty list of values")
        if section == "hparams" and not all(_is_number(v) for v in raw):
            raise ValueError(f"search {key!r} values must be numbers, got {list(raw)!r}")
        return Dimension(key, section, field, tuple(raw), None, None, None, None)
    if not isinstance(raw, dict):
        raise ValueError(f"search {key!r} must be a list of values or one of {{{', '.join(DISTRIBUTIONS)}: "
                         f"[low, high]}}, got {raw!r}")
    dists = [d for d in DISTRIBUTIONS if d in raw]
    extra = set(raw) - set(DISTRIBUTIONS) - {"num"}
    if len(dists) != 1 or extra:
        raise ValueError(f"search {key!r} must hold exactly one of {list(DISTRIBUTIONS)} (and optionally "
                         f"'num'), got {raw!r}")
    dist, bounds = dists[0], raw[dists[0]]
    if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(_is_number(b) for b in bounds)
            and bounds[0] <= bounds[1]):
        raise ValueError(f"search {key!r}: {dist} needs [low, high] numbers with low <= high, got {bounds!r}")
    if dist == "log_uniform" and bounds[0] <= 0:
        raise ValueError(f"search {key!r}: log_uniform needs low > 0, got {bounds!r}")
    if dist == "int_uniform" and not all(_is_int(b) for b in bounds):
        raise ValueError(f"search {key!r}: int_uniform needs integer bounds, got {bounds!r}")
    num = raw.get("num")
    if mode == "grid" and (not _is_int(num) or num < 1):
        raise ValueError(f"search {key!r}: a grid needs 'num' >= 1 points of the {dist} range, got {num!r}")
    return Dimension(key, section, field, None, dist, bounds[0], bounds[1], num)


def _parse_learners(spec: SweepSpec) -> list[str]:
    """The learners of the sweep: the `learner` search values, else the base run's learner."""
    raw = spec.search.get("learner", [spec.base.learner])
    if not isinstance(raw, (list, tuple)) or not raw or not all(isinstance(v, str) for v in raw):
        raise ValueError(f"search 'learner' must be a list of learner names ({', '.join(learner_names())}), "
                         f"got {raw!r}")
    for name in raw:
        if name not in LEARNERS:
            raise ValueError(f"unknown learner {name!r}; valid names: {', '.join(learner_names())}")
    if len(set(raw)) != len(raw):
        raise ValueError(f"search 'learner' names a learner twice: {list(raw)!r}")
    return list(raw)


def _resolve_all(key: str, learners: list[str]) -> tuple[str, str]:
    """`(section, field)` of a search name, the same for every learner of the sweep."""
    resolved = {learner: _resolve(key, _section_fields(learner), learner) for learner in learners}
    if len(set(resolved.values())) > 1:
        raise ValueError(f"search name {key!r} means different fields for the learners {learners}: "
                         f"{resolved}; write SECTION.{key}")
    section, field = resolved[learners[0]]
    for learner in learners:
        fixed = LEARNERS[learner].fixed
        if section == "config" and field in fixed:
            raise ValueError(f"search name {key!r} cannot vary: learner {learner!r} means config.{field}="
                             f"{fixed[field]!r}; to compare them, search over the learner instead, e.g. "
                             f"{{\"learner\": [\"mappo\", \"ippo\"]}}")
    return section, field


def parse_search(spec: SweepSpec) -> list[Dimension]:
    """The searched dimensions, with names resolved against the learner and bounds range-checked.

    `learner` is a dimension too (a list of learner names, each its own compile group); the
    other names must then mean the same field for every learner in it.

    Raises:
        ValueError: an unknown learner or name (listing the valid ones), a malformed value
            spec, a name that varies what a learner's name fixes (`critic`), or a range whose
            bounds fall outside the hyperparameter's valid range.
    """
    if spec.base.learner not in LEARNERS:
        raise ValueError(f"unknown learner {spec.base.learner!r}; valid names: {', '.join(learner_names())}")
    learners = _parse_learners(spec)
    dims = [Dimension("learner", "run", "learner", tuple(learners), None, None, None, None) if key == "learner"
            else _parse_dimension(key, *_resolve_all(key, learners), raw, spec.mode)
            for key, raw in spec.search.items()]
    seen = [(d.section, d.field) for d in dims]
    if len(set(seen)) != len(seen):
        raise ValueError(f"search names {list(spec.search)} name the same field twice")
    check_size(spec, dims)
    for learner in learners:
        create = LEARNERS[learner].hparams_cls.create
        for d in dims:
            if d.section == "hparams" and d.distribution:
                for bound in (d.low, d.high):
                    try:
                        create(**{**spec.base.hparams, d.field: bound})
                    except ValueError as e:
                        raise ValueError(f"search {d.key!r} range [{d.low}, {d.high}]: {e}") from None
    return dims


def _python(x):
    return x.item() if isinstance(x, np.generic) else x


def grid_values(dim: Dimension) -> list:
    """The values of a dimension in a grid."""
    if dim.values is not None:
        return list(dim.values)
    if dim.distribution == "log_uniform":
        values = np.geomspace(dim.low, dim.high, dim.num)
    else:
        values = np.linspace(dim.low, dim.high, dim.num)
    if dim.distribution == "int_uniform":
        values = sorted(set(np.rint(values).astype(int).tolist()))
    return [_python(v) for v in values]


def sample_value(dim: Dimension, rng: np.random.Generator):
    """One random draw of a dimension."""
    if dim.values is not None:
        return dim.values[int(rng.integers(len(dim.values)))]
    if dim.distribution == "int_uniform":
        return int(rng.integers(dim.low, dim.high + 1))
    if dim.distribution == "log_uniform":
        return float(np.exp(rng.uniform(math.log(dim.low), math.log(dim.high))))
    return float(rng.uniform(dim.low, dim.high))


def num_values(dim: Dimension) -> int:
    """`len(grid_values(dim))` in closed form (nothing is expanded): a rounded evenly spaced
    int_uniform grid keeps `min(num, high - low + 1)` distinct integers."""
    if dim.values is not None:
        return len(dim.values)
    if dim.distribution == "int_uniform":
        return min(dim.num, dim.high - dim.low + 1)
    return dim.num


def num_points(spec: SweepSpec, dims: list[Dimension]) -> int:
    """The points `expand_points` would return, counted without expanding them."""
    return math.prod(num_values(d) for d in dims) if spec.mode == "grid" else spec.num_samples


def check_size(spec: SweepSpec, dims: list[Dimension]) -> None:
    """Refuses a sweep of more than `MAX_POINTS` points or `MAX_MEMBERS` (point, seed) members.

    Raises:
        ValueError: naming the count and the cap.
    """
    points = num_points(spec, dims)
    if points > MAX_POINTS:
        sizes = " x ".join(f"{d.key} {num_values(d):,}" for d in dims)
        raise ValueError(f"sweep search has {points:,} points ({sizes}), more than the cap of {MAX_POINTS:,}; "
                         f"use fewer values (a smaller 'num' or shorter lists) or mode 'random' with num_samples")
    members = points * spec.base.num_seeds
    if members > MAX_MEMBERS:
        raise ValueError(f"sweep has {members:,} runs ({points:,} points x {spec.base.num_seeds:,} seeds), more "
                         f"than the cap of {MAX_MEMBERS:,}; use fewer points or seeds")


def expand_points(spec: SweepSpec, dims: list[Dimension]) -> list[dict]:
    """Every point of the sweep, `{search key: value}`, in a fixed order.

    Raises:
        ValueError: more points than `MAX_POINTS` (counted first, see `check_size`).
    """
    check_size(spec, dims)
    if spec.mode == "grid":
        return [dict(zip([d.key for d in dims], combo)) for combo in itertools.product(*map(grid_values, dims))]
    rng = np.random.default_rng(spec.sample_seed)
    return [{d.key: sample_value(d, rng) for d in dims} for _ in range(spec.num_samples)]


def point_run_config(spec: SweepSpec, dims: list[Dimension], point: dict) -> RunConfig:
    """The RunConfig that trains one point (what `best_config.json` holds)."""
    sections = {s: dict(getattr(spec.base, s)) for s in SECTIONS}
    learner = spec.base.learner
    for d in dims:
        if d.section == "run":
            learner = point[d.key]
        else:
            sections[d.section][d.field] = point[d.key]
    return dataclasses.replace(spec.base, learner=learner, **sections)
