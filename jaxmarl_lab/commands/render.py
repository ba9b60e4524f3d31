"""`jaxmarl-lab render`: an episode of an environment that can be drawn (grid-world, particle-spread) as a GIF
and a PNG strip.

    jaxmarl-lab render --env grid-world --env-kwargs '{"layout": "lesson"}' --out runs/render
    jaxmarl-lab render --run runs/qmix-lesson --out runs/render-qmix     # trained, greedy
"""

from __future__ import annotations

import argparse
import json

import jax

from jaxmarl_lab import envs, render
from jaxmarl_lab.baselines import as_policy, random_policy


def _make_env(name: str, kwargs_json: str):
    renderable = render.renderable_names()
    if name not in envs.registered_names():
        raise ValueError(f"unknown environment {name!r}; valid names: {', '.join(envs.registered_names())} "
                         f"(render supports {', '.join(renderable)})")
    if name not in renderable:
        raise ValueError(f"cannot render {name!r}: render supports {', '.join(renderable)}")
    try:
        kwargs = json.loads(kwargs_json)
    except json.JSONDecodeError as e:
        raise ValueError(f"--env-kwargs must be a JSON object, got {kwargs_json!r} ({e})") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"--env-kwargs must be a JSON object, got {kwargs_json!r}")
    try:
        env = envs.make(name, **kwargs)
    except TypeError as e:
        raise ValueError(f"bad --env-kwargs {kwargs} for {name!r}: {e}") from None
    return env, env.default_params()


def _trained(args: argparse.Namespace):
    """`(env, params, policy, carry, label)` of seed `--seed-index` of the run in `--run`."""
    from jaxmarl_lab.runs.training import load_trained

    built, run, learner_state = load_trained(args.run, args.seed_index)
    if args.env is not None and args.env != run.env:
        raise ValueError(f"--env {args.env!r} differs from the env of run {args.run!r} ({run.env!r}); "
                         f"leave --env out with --run")
    render.check_renderable(built.env, built.env_params)
    policy, carry = render.learner_policy(built.learner, learner_state)
    return built.env, built.env_params, policy, carry, f"greedy {run.learner} policy of {args.run} (seed {args.seed_index})"


def render_command(args: argparse.Namespace) -> int:
    """Writes `episode.gif` and `episode_strip.png` under `--out` and prints a summary."""
    if args.run is not None:
        env, params, policy, carry, label = _trained(args)
    else:
        env, params = _make_env(args.env or "grid-world", args.env_kwargs)
        policy, carry = as_policy(random_policy(env.spec))
        label = "random policy"
    steps = args.steps if args.steps is not None else int(env.time_limit(params))
    result = render.render_episode(env, params, policy, carry, jax.random.PRNGKey(args.seed), steps, args.out,
                                   fps=args.fps, strip_frames=args.strip_frames)
    if result["ended"]:
        end = "terminated" if result["terminated"] else "truncated at the time limit"
    else:
        end = f"still running after {steps} steps"
    print(f"{env.spec.name}, {label}: {result['length']} steps ({end}), per-agent return {result['return']:.3f}")
    print(f"wrote {result['gif']} ({result['frames']} frames) and {result['strip']} "
          f"({len(result['strip_indices'])} frames: {result['strip_indices']})")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("render", help="write an episode of an environment as a GIF and a PNG strip",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", default=None,
                   help=f"environment ({', '.join(render.renderable_names())}); default grid-world, or the run's "
                        f"with --run")
    p.add_argument("--env-kwargs", default="{}", help='static env options as JSON, e.g. \'{"layout": "lesson"}\'')
    p.add_argument("--policy", choices=("random",), default="random",
                   help="policy without --run (with --run: the trained greedy policy)")
    p.add_argument("--run", default=None, metavar="RUN_DIR", help="render the greedy policy of a trained run")
    p.add_argument("--seed-index", type=int, default=0, help="which seed of the run (with --run)")
    p.add_argument("--steps", type=int, default=None, help="steps at most (default: the episode's time limit)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episode")
    p.add_argument("--out", default="runs/render", help="folder for episode.gif and episode_strip.png")
    p.add_argument("--fps", type=int, default=4, help="frames per second of the GIF")
    p.add_argument("--strip-frames", type=int, default=10,
                   help="frames in the PNG strip (evenly spaced, first and last included)")
    p.set_defaults(func=render_command, positive=("steps", "fps", "strip_frames"))
