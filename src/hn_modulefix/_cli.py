"""`hn-modulefix` / `python -m hn_modulefix`: one sub-command per job.

Each sub-command lives beside the code it drives: the module named in _COMMANDS provides
`cli_arguments(parser)` and `cli_run(args) -> exit status`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import Sequence

from _hn_modulefix_boot import ENV_DEBUG, ENV_MANIFEST
from hn_modulefix._cache import DEFAULT_MAX_AGE, ENV_MAX_AGE

_COMMANDS = {
    "bundle": ("hn_modulefix._bundle", "copy scripts and their local imports into a bundle directory",
               "hn-modulefix bundle scripts/pipeline.py -o build/bundle"),
    "cache": ("hn_modulefix._cache", "list the bundles hn_modulefix.ship() keeps, or prune the unused ones",
              "hn-modulefix cache --prune --older-than 2d"),
    "check": ("hn_modulefix._check", "import every module a pickle payload needs in a fresh worker-like interpreter",
              "hn-modulefix check udf.pkl --manifest build/bundle/manifest.json"),
    "doctor": ("hn_modulefix._doctor", "show the start-up hook, manifest and sitecustomize state of this interpreter",
               "HN_MODULEFIX_MANIFEST=build/bundle/manifest.json hn-modulefix doctor"),
    "emulate": ("hn_modulefix._emulate", "run a Modal function in a stand-in container on local disk",
                "hn-modulefix emulate examples/modal_daft_pipeline.py::retrieve --args-from example_queries"),
    "install-hook": ("hn_modulefix._hook", "install the start-up hook into this interpreter's site-packages",
                     "python -m hn_modulefix install-hook"),
}

_ENVIRONMENT = "environment:\n" + "\n".join("  %-26s  %s" % row for row in (
    (ENV_MANIFEST, "the bundle manifest listed modules are rebuilt from: a path, or"),
    ("", "pythonpath:DIR/manifest.json for the first sys.path entry that holds it;"),
    ("", "unset, the start-up hook does nothing"),
    (ENV_DEBUG, "1: print the traceback behind an hn_modulefix error"),
    (ENV_MAX_AGE, "ship() removes cache bundles unused this long (default %s; 12h, 30d...)" % DEFAULT_MAX_AGE),
))


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    from hn_modulefix import __version__

    examples = "\n".join("  %s" % example for _, _, example in _COMMANDS.values())
    parser = argparse.ArgumentParser(
        prog="hn-modulefix", description="Make the modules of imported scripts importable in every worker process.",
        epilog="examples:\n%s\n\n%s" % (examples, _ENVIRONMENT), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}
    for name, (module, help_text, example) in _COMMANDS.items():
        command = commands[name] = sub.add_parser(name, help=help_text, description=help_text,
                                                  epilog="example:\n  %s\n\n%s" % (example, _ENVIRONMENT),
                                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        importlib.import_module(module).cli_arguments(command)
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    from hn_modulefix._bundle import BundleError
    from hn_modulefix._manifest import ManifestError

    parser, commands = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Said by the sub-command's parser, so its usage is the one shown.
        commands[args.command].error("unrecognized arguments: %s" % " ".join(unknown))
    try:
        return int(importlib.import_module(_COMMANDS[args.command][0]).cli_run(args))
    except (BundleError, ManifestError, OSError) as exc:
        if os.environ.get(ENV_DEBUG) == "1":
            traceback.print_exc()
        print("hn-modulefix %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 1
