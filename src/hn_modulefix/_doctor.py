"""`hn-modulefix doctor`: whether the start-up hook works in this interpreter.

It reports what decides whether a process started here gets the finder: the start-up
flags, the .pth hook in site-packages and the boot module it imports, the manifest and
the hash of every file it lists and where the finder would load it from in this process
(asked of the finder's own rule, executing nothing), and every `sitecustomize` on sys.path.  Whether the hook
installed the finder at start is asked of a fresh interpreter with the same executable,
flags and environment: in this process the CLI's own imports may have installed it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.machinery import PathFinder

from _hn_modulefix_boot import ENV_MANIFEST as _ENV_MANIFEST
from _hn_modulefix_boot import ON_PYTHONPATH as _ON_PYTHONPATH
from hn_modulefix._hook import PTH_NAME as _PTH_NAME
from hn_modulefix._finder import Resolution, Resolver
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
        where = "%s, found on sys.path with the listed bytes" % here.location
    elif here.kind == "original":
        where = "the original %s" % here.location
    elif here.kind == "shipped":
        where = "the shipped copy" + (" (%s)" % here.reason if here.reason else "")
    elif here.kind == "foreign":
        where = "not answered: this program keeps its own %s (%s)" % (here.location, here.reason)
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


def doctor() -> tuple[list[str], list[str]]:
    """The report lines and the problems found (none when everything works)."""
    doc = _Doctor()
    doc.row("interpreter", "%s (Python %s)" % (sys.executable, sys.version.split()[0]))
    doc.row("start flags", _describe_flags())

    # PEP 829: from Python 3.15 `site` calls the .start file's entry point instead of the
    # .pth file's import line, so that is the file the hook depends on.
    hook_name = _START_NAME if sys.version_info >= (3, 15) else _PTH_NAME
    pths = [os.path.join(d, hook_name) for d in _site_dirs() if os.path.isfile(os.path.join(d, hook_name))]
    doc.row(hook_name[hook_name.rindex("."):] + " hook",
            pths[0] if pths else "no %s in any site-packages directory" % hook_name)
    for pth in pths[1:]:
        doc.more(pth)
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
                why = ("no %s in site-packages: pip install hn_modulefix, or run "
                       "`python -m hn_modulefix install-hook`" % hook_name)
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


def _text(lines: list[str], problems: list[str]) -> str:
    if not problems:
        return "\n".join(lines + ["no problems found"])
    return "\n".join(lines + ["%d problem%s:" % (len(problems), "" if len(problems) == 1 else "s")]
                     + ["  " + problem for problem in problems])


def doctor_report() -> str:
    """What `hn-modulefix doctor` prints, for the process this runs in: on Dask's workers,
    ``client.run(hn_modulefix.doctor_report)``."""
    return _text(*doctor())


def cli_run(args: argparse.Namespace) -> int:
    lines, problems = doctor()
    print(_text(lines, problems))
    return 1 if problems else 0
