"""`jaxmarl-lab list`: environments, learners and their options."""

from __future__ import annotations

import argparse

from jaxmarl_lab import envs


def list_envs(args: argparse.Namespace) -> int:
    """Prints the registered environments and their default specs."""
    del args
    for name in envs.registered_names():
        print(f"{name}: {envs.make(name).spec}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="registered environments and their specs")
    p.set_defaults(func=list_envs)
