"""`hn-modulefix` / `python -m hn_modulefix`: one sub-command per job.

Each sub-command lives beside the code it drives: the module named in _COMMANDS provides
`cli_arguments(parser)` and `cli_run(args) -> exit status`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

_COMMANDS = {
    "bundle": ("hn_modulefix._bundle", "copy scripts and their local imports into a bundle directory"),
    "check": ("hn_modulefix._check", "import every module a pickle payload needs in a fresh worker-like interpreter"),
    "doctor": ("hn_modulefix._doctor", "show the start-up hook, manifest and sitecustomize state of this interpreter"),
    "emulate": ("hn_modulefix._emulate", "run a Modal function in a stand-in container on local disk"),
    "install-hook": ("hn_modulefix._hook", "install the start-up hook into this interpreter's site-packages"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hn-modulefix", description="Make the modules of imported scripts importable in every worker process.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in _COMMANDS.items():
        importlib.import_module(module).cli_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from hn_modulefix._bundle import BundleError
    from hn_modulefix._manifest import ManifestError

    args = _parser().parse_args(argv)
    try:
        return int(importlib.import_module(_COMMANDS[args.command][0]).cli_run(args))
    except (BundleError, ManifestError, OSError) as exc:
        print("hn-modulefix %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 1
