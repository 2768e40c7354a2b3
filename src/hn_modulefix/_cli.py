"""`hn-modulefix` / `python -m hn_modulefix`: one sub-command per job."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = func
        return func

    return register


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hn-modulefix", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("bundle", help="copy scripts and their local imports into a bundle directory")
    p.add_argument("scripts", nargs="+", metavar="SCRIPT")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="bundle directory (replaced if it holds a bundle)")
    p.add_argument("--root", metavar="DIR", help="project root the scripts are importable from (default: cwd)")
    p.add_argument("--include", action="append", default=[], metavar="MODULE",
                   help="also ship this local module (imported in a way the source does not show)")
    return parser


@_command("bundle")
def _bundle(args: argparse.Namespace) -> int:
    from hn_modulefix._bundle import bundle
    from hn_modulefix._manifest import load

    manifest_path = bundle(*args.scripts, out=args.out, root=args.root, include=args.include)
    for source in load(str(manifest_path)).sources:
        print("%-40s %s" % (", ".join(source.names), source.relpath))
    print(manifest_path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from hn_modulefix._bundle import BundleError
    from hn_modulefix._manifest import ManifestError

    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (BundleError, ManifestError, OSError) as exc:
        print("hn-modulefix %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 1
