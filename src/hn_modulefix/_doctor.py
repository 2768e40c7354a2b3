"""`hn-modulefix doctor`: whether the start-up hook works in this interpreter.

It reports what decides whether a process started here gets the finder: the start-up
flags, the .pth hook in site-packages and the boot module it imports, the manifest, its
kind, the hash of every file it lists and where the finder would load it from in this
process (asked of the finder's own rule, executing nothing), and every `sitecustomize` on
sys.path.  Whether the hook installed the finder at start is asked of a fresh interpreter
with the same executable, flags and environment: in this process the CLI's own imports
may have installed it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.machinery import PathFinder

from _hn_modulefix_boot import ENV_MANIFEST as _ENV_MANIFEST
from _hn_modulefix_boot import ON_PYTHONPATH as _ON_PYTHONPATH
from hn_modulefix._finder import Resolution, Resolver
from hn_modulefix._hook import IMPORT_LINES_IGNORED_FROM, hook_that_runs
from hn_modulefix._hook import PTH_NAME as _PTH_NAME
from hn_modulefix._hook import START_NAME as _START_NAME
from hn_modulefix._manifest import ManifestError, Source, SourceChanged, load, locate, read_verified

_BOOT = "_hn_modulefix_boot"
_ASK_FINDER = ("import sys\n"
               "found = [f for f in sys.meta_path if getattr(f, '_hn_modulefix_finder', False)]\n"
               "print(getattr(found[0], '__file__', None) or repr(found[0]) if found else '')\n")


class _Doctor:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.problems: list[str] = []

    def row(self, label: str, value: str) -> None:
        self.lines.append("%-14s %s" % (label, value))

    def more(self, value: str) -> None:
        self.lines.append("%-14s %s" % ("", value))


def _flag_args() -> list[str]:
    """The command-line options of this interpreter that change what runs at start."""
    flags = sys.flags
    args = ["-S"] if flags.no_site else []
    if flags.isolated:
        return args + ["-I"]
    if flags.ignore_environment:
        args.append("-E")
    if flags.no_user_site:
        args.append("-s")
    if getattr(flags, "safe_path", False):
        args.append("-P")
    return args


def _describe_flags() -> str:
    if sys.flags.no_site:
        return "-S: `site` is disabled, so no .pth file or sitecustomize runs, the start-up hook neither"
    if sys.flags.isolated:
        return ("-I: PYTHONPATH and the user site are ignored (a sitecustomize hook on PYTHONPATH cannot run);"
                " .pth files in site-packages still run")
    if sys.flags.ignore_environment:
        return ("-E: PYTHONPATH is ignored (a sitecustomize hook on PYTHONPATH cannot run);"
                " .pth files in site-packages still run")
    return "none that disable start-up hooks (no -S, -I or -E)"


def _site_dirs() -> list[str]:
    """The directories whose .pth files `site` runs (a site-packages directory that is
    merely on sys.path, through PYTHONPATH or a .pth path line, does not count)."""
    import site

    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    unique: dict[str, str] = {}
    for d in dirs:
        unique.setdefault(os.path.realpath(d), d)
    return list(unique.values())


def _source_problem(source: Source, here: Resolution) -> tuple[str, str, str | None]:
    """The state of one listed file, the file it concerns, and what is wrong with it and
    the fix (None when nothing); `here` is where it loads from in this process."""
    if here.kind == "refused" and here.location == source.original:
        # Workers here would find the driver's file edited: they refuse to run the old copy.
        return "STALE", source.original, "changed since it was bundled; re-run `hn-modulefix bundle`"
    # The shipped copy counts wherever the original is not: on other machines too.
    try:
        read_verified(source)
    except FileNotFoundError:
        return "MISSING", source.path, "the file is missing; re-run `hn-modulefix bundle`"
    except OSError as exc:
        # Bundling again cannot fix permissions or a directory in the file's place.
        return "UNREADABLE", source.path, "cannot read it: %s" % (exc.strerror or exc)
    except SourceChanged as exc:
        return "CHANGED", source.path, ("sha256 mismatch: the manifest lists %s, the file has %s (changed after "
                                        "bundling); re-run `hn-modulefix bundle`" % (exc.listed[:12], exc.found[:12]))
    return "ok", source.path, None


def _where(name: str, here: Resolution) -> str:
    """Where the finder would load `name` from in this process, in words."""
    if here.kind == "path":
        where = "%s, where the path finder finds it, with the listed bytes" % here.location
    elif here.kind == "original":
        where = "the original %s" % here.location
    elif here.kind == "shipped":
        where = "the shipped copy" + (" (%s)" % here.reason if here.reason else "")
    elif here.kind == "foreign":
        where = "not answered, this program keeps its own %s: %s" % (here.location, here.reason)
    else:
        where = "REFUSED: %s: %s" % (here.location, here.reason)
    return "here, %s: %s" % (name, where)


def _finder_at_start() -> tuple[str | None, str]:
    """What a fresh interpreter like this one has on sys.meta_path from hn_modulefix,
    and the first line it printed about hn_modulefix."""
    done = subprocess.run([sys.executable, *_flag_args(), "-c", _ASK_FINDER], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    said = [line for line in done.stderr.splitlines() if "hn_modulefix" in line]
    lines = done.stdout.splitlines()
    return (lines[-1] or None) if lines else None, said[0] if said else ""


def _sitecustomizes() -> list[str]:
    ran = getattr(sys.modules.get("sitecustomize"), "__file__", None)
    ran_real = os.path.realpath(ran) if isinstance(ran, str) else None
    found: list[str] = []
    for entry in sys.path:
        spec = PathFinder.find_spec("sitecustomize", [entry])
        if spec is not None and spec.origin and spec.origin not in found:
            found.append(spec.origin)
    if isinstance(ran, str) and ran_real not in {os.path.realpath(f) for f in found}:
        found.insert(0, ran)  # it ran from a directory no longer on sys.path
    described = []
    for origin in found:
        notes = ["ran" if os.path.realpath(origin) == ran_real else "did not run: only one sitecustomize runs"]
        try:
            with open(origin, "rb") as f:
                if _BOOT.encode() in f.read():
                    notes.append("hn_modulefix's hook")
        except OSError:
            pass
        described.append("%s (%s)" % (origin, "; ".join(notes)))
    return described


def _manifest_rows(doc: _Doctor, reference: str) -> None:
    # Resolved as the finder resolves it, against this interpreter's sys.path.
    source_of = _ENV_MANIFEST + ("=" + reference if reference.startswith(_ON_PYTHONPATH) else "")
    disabled = "the finder stays disabled: "
    try:
        manifest_path = locate(reference)
    except ManifestError as exc:
        doc.row("manifest", "%s (from %s): missing" % (reference, _ENV_MANIFEST))
        doc.problems.append("%s; %sput the directory that holds it on PYTHONPATH" % (exc, disabled))
        return
    if not os.path.exists(manifest_path):
        doc.row("manifest", "%s (from %s): missing" % (manifest_path, source_of))
        doc.problems.append("manifest %s does not exist; %spoint %s at the manifest.json of a bundle "
                            "(`hn-modulefix bundle SCRIPT -o DIR` makes one)" % (manifest_path, disabled, _ENV_MANIFEST))
        return
    try:
        manifest = load(manifest_path)
    except ManifestError as exc:
        doc.row("manifest", "%s (from %s): does not parse" % (manifest_path, source_of))
        doc.problems.append("%s; %s%s must name a manifest.json that `hn-modulefix bundle` wrote"
                            % (exc, disabled, _ENV_MANIFEST))
        return
    count = len(manifest.sources)
    doc.row("manifest", "%s (from %s): parses, %d file%s"
            % (manifest.path, source_of, count, "" if count == 1 else "s"))
    doc.row("kind", "snapshot (made by the running driver): a file with other bytes at an original path is "
            "passed over for the shipped copy" if manifest.snapshot else "ahead-of-time (`hn-modulefix bundle`, "
            "bundle()): an original edited since bundling is refused")
    width = max([len(source.relpath) for source in manifest.sources] + [0])
    resolver = Resolver(manifest)
    for source in manifest.sources:
        here = resolver.resolve_fresh(source.names[0])
        state, where, problem = _source_problem(source, here)
        doc.lines.append("  %-12s %-*s  %s" % (state, width, source.relpath, ", ".join(source.names)))
        doc.more(_where(source.names[0], here))
        if problem is not None:
            doc.problems.append("%s (%s): %s" % (where, ", ".join(source.names), problem))


def _hook_rows(doc: _Doctor) -> list[str]:
    """The rows naming the hook file `site` runs here (PEP 829 decides which, by version);
    the paths of those that run. Hook files that this Python would not run are a problem."""
    version = sys.version_info[:2]
    found = {d: [n for n in (_PTH_NAME, _START_NAME) if os.path.isfile(os.path.join(d, n))] for d in _site_dirs()}
    running = []
    for d, names in found.items():
        runs = hook_that_runs(names, version)
        if runs is not None:
            running.append(os.path.join(d, runs))
    if running:
        name = os.path.basename(running[0])
        doc.row(name[name.rindex("."):] + " hook", running[0])
        for path in running[1:]:
            doc.more(path)
        return running
    present = [os.path.join(d, n) for d, names in found.items() for n in names]
    python = "Python %d.%d" % version
    if version >= IMPORT_LINES_IGNORED_FROM:
        why = "%s ignores the import lines of .pth files (PEP 829)" % python
        fix = "run `python -m hn_modulefix install-hook --start` (the .start entry point)"
    else:
        why = "%s runs no .start file (PEP 829 entry points start with 3.15)" % python
        fix = "run `python -m hn_modulefix install-hook` (the .pth import line), or pip install hn_modulefix"
    if present:
        doc.row("hook file", "%s: not run, %s" % (", ".join(present), why))
        doc.problems.append("no start-up hook runs in this Python: %s; %s" % (why, fix))
    else:
        wanted = _PTH_NAME if version < IMPORT_LINES_IGNORED_FROM else _START_NAME
        doc.row(wanted[wanted.rindex("."):] + " hook", "no %s in any site-packages directory" % wanted)
    return running


def doctor() -> tuple[list[str], list[str]]:
    """The report lines and the problems found (none when everything works)."""
    doc = _Doctor()
    doc.row("interpreter", "%s (Python %s)" % (sys.executable, sys.version.split()[0]))
    doc.row("start flags", _describe_flags())

    pths = _hook_rows(doc)
    boot = PathFinder.find_spec(_BOOT)
    doc.row("boot module", boot.origin if boot is not None and boot.origin else "not found on sys.path")
    if pths and boot is None:
        doc.problems.append("%s imports %s, which is not installed: reinstall hn_modulefix" % (pths[0], _BOOT))

    manifest = os.environ.get(_ENV_MANIFEST)
    if not manifest:
        doc.row("finder", "not installed (the hook stays inert while %s is not set)" % _ENV_MANIFEST)
        doc.row("manifest", "%s is not set" % _ENV_MANIFEST)
    else:
        finder, said = _finder_at_start()
        if finder:
            doc.row("finder", "installed at start-up by %s" % finder)
        else:
            doc.row("finder", "NOT installed at start-up")
            if sys.flags.no_site:
                why = "python -S disables the start-up hook"
            elif not pths:
                why = "no start-up hook runs in this Python (see above)"
            else:
                why = said or "see `python -c pass` in this environment for errors"
            doc.problems.append("%s is set but a fresh interpreter has no finder: %s" % (_ENV_MANIFEST, why))
        _manifest_rows(doc, manifest)

    sitecustomizes = _sitecustomizes()
    doc.row("sitecustomize", sitecustomizes[0] if sitecustomizes else "none on sys.path")
    for line in sitecustomizes[1:]:
        doc.more(line)
    return doc.lines, doc.problems


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def cli_run(args: argparse.Namespace) -> int:
    lines, problems = doctor()
    for line in lines:
        print(line)
    if not problems:
        print("no problems found")
        return 0
    print("%d problem%s:" % (len(problems), "" if len(problems) == 1 else "s"))
    for problem in problems:
        print("  " + problem)
    return 1
