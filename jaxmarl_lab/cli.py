"""The `jaxmarl-lab` command line.

Each subcommand lives in `jaxmarl_lab/commands/<name>.py` and registers itself with
`add_parser(subparsers)`, setting `func(args) -> exit code` and optionally `positive`
(names of integer options that must be >= 1).

Errors a user can fix (ValueError, FileExistsError, FileNotFoundError) print one line,
`jaxmarl-lab: error: ...`, and exit with status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

COMMANDS = ("train", "eval", "sweep", "variance", "bench", "render", "list", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxmarl-lab", description="JAX-vectorized multi-agent RL.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module_name = f"jaxmarl_lab.commands.{name}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in getattr(args, "positive", ()):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"jaxmarl-lab: error: --{name.replace('_', '-')} must be an integer >= 1, got {value}",
                  file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        if args.debug:
            raise
        print(f"jaxmarl-lab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
