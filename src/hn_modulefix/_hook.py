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

import _hn_modulefix_boot

PTH_NAME = "hn_modulefix.pth"
# Python 3.15+ (PEP 829) calls the entry point in the .start file and skips the .pth's import
# line, which Python 3.18 ignores; older Pythons ignore the .start file.
START_NAME = "hn_modulefix.start"
INSTALL_COMMAND = "python -m hn_modulefix install-hook"


def stage(target: str, *, pth: bool = True, sitecustomize: bool = False) -> list[str]:
    """Copy the package, the boot module, the .start and .pth files and, if asked,
    `sitecustomize.py` into `target`, laid out as in site-packages; returns the copied paths.

    .start and .pth files only run from a site directory, so elsewhere (a PYTHONPATH entry)
    they are inert and only carried along for `install_hook` to find.
    """
    package = os.path.dirname(os.path.abspath(__file__))
    # In site-packages, in src/ and in every staged copy the .pth sits beside the package.
    copies = [(package, os.path.join(target, "hn_modulefix")),
              (os.path.abspath(_hn_modulefix_boot.__file__), os.path.join(target, "_hn_modulefix_boot.py"))]
    if sitecustomize:
        copies.append((os.path.join(package, "_sitecustomize.py"), os.path.join(target, "sitecustomize.py")))
    if pth:
        # Last: until they exist the hook cannot run half-installed.
        copies.extend((os.path.join(os.path.dirname(package), name), os.path.join(target, name))
                      for name in (START_NAME, PTH_NAME))
    os.makedirs(target, exist_ok=True)
    for source, destination in copies:
        if os.path.realpath(source) == os.path.realpath(destination):
            continue  # already installed there: installing again must be harmless
        if os.path.isdir(source):
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(source, destination)
    return [destination for _, destination in copies]


def install_hook(site_dir: str | None = None) -> list[str]:
    """Copy the package, the boot module, the .start and the .pth into `site_dir` (default:
    this interpreter's purelib) and compile them; returns the installed paths. Idempotent."""
    installed = stage(site_dir or sysconfig.get_paths()["purelib"])
    installed_package, installed_boot = installed[:2]
    # Bytecode now, or every start would compile the boot module again (see
    # PYTHONDONTWRITEBYTECODE in the environments this runs in).
    compileall.compile_file(installed_boot, quiet=1)
    compileall.compile_dir(installed_package, quiet=1)
    return installed


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site-dir", metavar="DIR", help="where to install (default: this interpreter's site-packages)")


def cli_run(args: argparse.Namespace) -> int:
    for path in install_hook(args.site_dir):
        print(path)
    return 0
