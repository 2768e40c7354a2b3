"""Install the start-up hook into an interpreter's site-packages without pip.

Used where a wheel cannot be pip-installed: Modal image builds run
`PYTHONPATH=<copied package> python -m hn_modulefix install-hook`, so the hook lands in
whatever interpreter the image calls `python`, whatever its version and prefix.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import sysconfig
from typing import Collection

import _hn_modulefix_boot

PTH_NAME = "hn_modulefix.pth"
START_NAME = "hn_modulefix.start"
# PEP 829: from Python 3.15 `site` calls the entry points of .start files, and a .start file
# beside a .pth of the same name suppresses that .pth's import lines; Pythons before 3.18
# still run import lines (3.15 says they are deprecated only under -v), 3.18 ignores them.
# Resolving any entry point makes 3.15's `site` import pkgutil and re (1.6-1.75x start-up
# measured on Debian's 3.15.2), so the wheel ships the .pth alone while import lines run; the .start
# is written only on request (`install-hook --start`).  When 3.18 arrives, the suite's
# test of the wheel's hook on every Python fails there: ship the .start again.
ENTRY_POINTS_FROM = (3, 15)
IMPORT_LINES_IGNORED_FROM = (3, 18)
START_TEXT = ("# hn_modulefix start-up hook for Python 3.15+ (PEP 829), written by `hn-modulefix install-hook --start`: "
              "site calls this entry point instead of the import line of hn_modulefix.pth; start() returns at once "
              "unless HN_MODULEFIX_MANIFEST is set.\n_hn_modulefix_boot:start\n")
INSTALL_COMMAND = "python -m hn_modulefix install-hook"


def hook_that_runs(present: Collection[str], version: tuple[int, ...]) -> str | None:
    """Which of hn_modulefix's hook files, of those `present` in a site directory, `site`
    runs on Python `version`; None when neither runs."""
    if version >= ENTRY_POINTS_FROM and START_NAME in present:
        return START_NAME
    if version < IMPORT_LINES_IGNORED_FROM and PTH_NAME in present:
        return PTH_NAME
    return None


def stage(target: str, *, pth: bool = True, start: bool = False, sitecustomize: bool = False) -> list[str]:
    """Copy the package, the boot module, the .pth file and, if asked, `sitecustomize.py`
    into `target`, laid out as in site-packages, and with `start` write the .start file;
    returns the paths written.

    .pth and .start files only run from a site directory, so elsewhere (a PYTHONPATH entry)
    they are inert: the .pth is carried along for `install_hook` to find.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    # In site-packages, in src/ and in every staged copy the .pth sits beside the package.
    copies = [(package, os.path.join(target, "hn_modulefix")),
              (os.path.abspath(_hn_modulefix_boot.__file__), os.path.join(target, "_hn_modulefix_boot.py"))]
    if sitecustomize:
        copies.append((os.path.join(package, "_sitecustomize.py"), os.path.join(target, "sitecustomize.py")))
    os.makedirs(target, exist_ok=True)
    for source, destination in copies:
        if os.path.realpath(source) == os.path.realpath(destination):
            continue  # already installed there: installing again must be harmless
        if os.path.isdir(source):
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(source, destination)
    written = [destination for _, destination in copies]
    # The hook files last: until the modules they import exist, they cannot run half-installed.
    if start:
        written.append(os.path.join(target, START_NAME))
        with open(written[-1], "w", encoding="utf-8") as f:
            f.write(START_TEXT)
    if pth:
        written.append(os.path.join(target, PTH_NAME))
        source = os.path.join(os.path.dirname(package), PTH_NAME)
        if os.path.realpath(source) != os.path.realpath(written[-1]):
            shutil.copyfile(source, written[-1])
    return written


def install_hook(site_dir: str | None = None, *, start: bool = False) -> list[str]:
    """Copy the package, the boot module and the .pth into `site_dir` (default: this
    interpreter's purelib), with `start` also the .start file, and compile them; returns
    the installed paths. Idempotent; without `start` it removes a .start file an earlier
    install left there, which would make Python 3.15-3.17 resolve entry points at every start."""
    target = site_dir or sysconfig.get_paths()["purelib"]
    installed = stage(target, start=start)
    if not start and os.path.lexists(os.path.join(target, START_NAME)):
        os.remove(os.path.join(target, START_NAME))
    installed_package, installed_boot = installed[:2]
    # Bytecode now, or every start would compile the boot module again (see
    # PYTHONDONTWRITEBYTECODE in the environments this runs in).
    compileall.compile_file(installed_boot, quiet=1)
    compileall.compile_dir(installed_package, quiet=1)
    return installed


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site-dir", metavar="DIR", help="where to install (default: this interpreter's site-packages)")
    parser.add_argument("--start", action="store_true",
                        help="also write hn_modulefix.start, the PEP 829 entry point Python 3.15+ runs instead of "
                             "the .pth's import line (which 3.18 ignores); it costs 3.15-3.17 an import of pkgutil "
                             "at every start")


def cli_run(args: argparse.Namespace) -> int:
    for path in install_hook(args.site_dir, start=args.start):
        print(path)
    return 0
