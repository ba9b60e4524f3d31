"""The `jaxmarl-lab` command line.

Each subcommand lives in `jaxmarl_lab/commands/<name>.py` and registers itself with
`add_parser(subparsers)`, setting `func(args) -> exit code` and optionally `positive`
(names of integer options that must be >= 1).

Errors a user can fix (ValueError, OSError such as a missing file, a read-only folder or a
full disk, and a folder locked by another process) print one line, `jaxmarl-lab: error: ...`,
and exit with status 2; `--debug` shows the traceback. Abbreviated flags are refused.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

COMMANDS = ("train", "eval", "sweep", "bench", "render", "list", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxmarl-lab", description="JAX-vectorized multi-agent RL.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module_name = f"jaxmarl_lab.commands.{name}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).add_parser(sub)
    for command in sub.choices.values():
        command.allow_abbrev = False  # `--step` must not silently mean `--steps`
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command; SIGINT / SIGTERM before a command's own handling ends with one line (exit 130 / 143)."""
    from jaxmarl_lab.runs.interrupts import exit_on_signal  # standard library only: installed before JAX loads

    with exit_on_signal("jaxmarl-lab: interrupted"):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in getattr(args, "positive", ()):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"jaxmarl-lab: error: --{name.replace('_', '-')} must be an integer >= 1, got {value}",
                  file=sys.stderr)
            return 2
    from jaxmarl_lab.runs.files import LockedError

    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`jaxmarl-lab list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, OSError, LockedError) as e:
        if args.debug:
            raise
        print(f"jaxmarl-lab: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside a command's own signal handling (e.g. while importing JAX)
        print("\njaxmarl-lab: interrupted", file=sys.stderr)
        return 130


def _one_line(e: Exception) -> str:
    """The message of `e`; an OSError from the system as `reason: path` instead of `[Errno 28] ...`."""
    if isinstance(e, OSError) and e.strerror and e.errno is not None:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e).replace("\n", " ")


if __name__ == "__main__":
    sys.exit(main())
