"""The bundler: copy scripts and their local import closure into a directory + manifest.

A module is *local* when it is found in one of the script's search roots (its own
directory, where ``modal run scripts/x.py`` puts it on sys.path, and the project root,
where ``modal run -m scripts.x`` or ``python -m`` put it) and its file lies outside the
standard library and site-packages.  Imports are read from the source with `ast`, never
executed: top level, inside functions, relative, and `importlib.import_module("literal")`.

An interactive ``__main__`` (a Jupyter kernel, IPython) has no script: there the modules
it has already imported from the project stand in for it, each under the name it used.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import functools
import os
import shutil
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, Union

from _hn_modulefix_boot import NAMES_FILE
from hn_modulefix._manifest import (INDEX_NAME, MANIFEST_NAME, Manifest, Source, dump, dump_index, dump_names,
                                    enclosing, is_module_name, sha256_bytes)
from hn_modulefix._scan import Pool, scan

if TYPE_CHECKING:
    from hn_modulefix._scan import Import

PathLike = Union[str, "os.PathLike[str]"]
MODULES_DIR = "modules"
# What marks a project's root directory, as packaging tools and git know it.
ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


class BundleError(Exception):
    """A bundle cannot be made: names the script or module and what is wrong."""


class _Local:
    """A local file and the names it is importable under."""

    __slots__ = ("path", "package", "names")

    def __init__(self, path: str, package: bool) -> None:
        self.path = path
        self.package = package
        self.names: set[str] = set()


class ImportedModule:
    """A module this interpreter imported from a local file, under the name it used: the
    name its objects pickle by reference."""

    __slots__ = ("name", "path", "package", "search_root")

    def __init__(self, name: str, path: str, package: bool, search_root: str) -> None:
        self.name = name
        self.path = path
        self.package = package
        self.search_root = search_root  # the sys.path entry it was found in

    def __repr__(self) -> str:
        return "ImportedModule(%r, %r)" % (self.name, self.path)


Script = Union[PathLike, ImportedModule]


def _installed_dirs() -> tuple[str, ...]:
    import site

    dirs = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.update(site.getsitepackages())
    dirs.add(site.getusersitepackages())
    dirs.update(p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages"))
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


def _is_identifier_path(parts: Sequence[str]) -> bool:
    return all(p.isidentifier() for p in parts)


def _names_for(path: str, package: bool, roots: Sequence[str]) -> list[str]:
    """Every dotted name under which `path` is importable from one of `roots`."""
    stem_path = os.path.dirname(path) if package else os.path.splitext(path)[0]
    names = []
    for root in roots:
        rel = os.path.relpath(stem_path, root)
        if rel == "." or rel.startswith(os.pardir):
            continue
        name = ".".join(rel.split(os.sep))
        if is_module_name(name):
            names.append(name)
    return names


class _Listing:
    """What each directory holds, listed once: a large closure looks up the same
    directories tens of thousands of times.  Like the path finder, it sees what a
    directory lists (an unlistable directory holds nothing)."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, os.DirEntry[str]]] = {}

    def entries(self, directory: str) -> dict[str, os.DirEntry[str]]:
        entries = self._entries.get(directory)
        if entries is None:
            try:
                with os.scandir(directory) as it:
                    entries = {entry.name: entry for entry in it}
            except OSError:
                entries = {}
            self._entries[directory] = entries
        return entries

    def directories(self) -> set[str]:
        """Every directory looked into: a file added to one could change the closure."""
        return set(self._entries)

    def isfile(self, directory: str, name: str) -> bool:
        entry = self.entries(directory).get(name)
        return entry is not None and _is(entry.is_file)

    def isdir(self, directory: str, name: str) -> bool:
        entry = self.entries(directory).get(name)
        return entry is not None and _is(entry.is_dir)


def _is(test: Callable[[], bool]) -> bool:
    try:
        return test()  # follows a symbolic link, as os.path.isfile does
    except OSError:
        return False


def _locate(name: str, roots: Sequence[str], listing: _Listing) -> list[tuple[str, bool]]:
    """Files to ship for importing `name` from `roots`: every regular package on the
    way and the module itself, following the order the path finder searches in."""
    parts = name.split(".")
    last = len(parts) - 1
    for root in roots:
        found = []
        directory = root
        for i, part in enumerate(parts):
            candidate = os.path.join(directory, part)
            is_dir = listing.isdir(directory, part)
            if is_dir and listing.isfile(candidate, "__init__.py"):
                found.append((os.path.join(candidate, "__init__.py"), True))
                directory = candidate
            elif i < last and is_dir:
                directory = candidate  # namespace portion: nothing to ship for it
            elif i == last and listing.isfile(directory, part + ".py"):
                found.append((candidate + ".py", False))
            elif i == last and is_dir:
                pass  # a namespace package itself: nothing to ship
            else:
                break
        else:
            return found
    return []


def _scan(path: str) -> list[Import]:
    """The imports of one file, read here; a syntax error or an unreadable file is a
    BundleError naming it."""
    try:
        with open(path, "rb") as f:
            return scan(f.read(), path)
    except SyntaxError as exc:
        raise BundleError("%s:%s: syntax error: %s" % (path, exc.lineno, exc.msg)) from exc
    except OSError as exc:
        raise BundleError("cannot read %s: %s" % (path, exc.strerror or exc)) from exc


def _imported_names(imports: Iterable[Import], package: str) -> set[str]:
    """Module names a file's imports may import; `package` resolves relative imports."""
    names: set[str] = set()

    def add(dotted: str) -> None:
        parts = dotted.split(".")
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))

    for level, module, from_names in imports:
        if from_names is None:
            if not (level or module.startswith(".")):  # import_module(".relative") needs a package
                add(module)
            continue
        if level:
            base_parts = package.split(".") if package else []
            if level - 1 > len(base_parts) or not package:
                continue  # would fail at run time too
            base = ".".join(base_parts[: len(base_parts) - (level - 1)])
            module = base + "." + module if module else base
        if not module:
            continue
        add(module)
        for name in from_names:
            if name != "*":
                names.add(module + "." + name)
    return {n for n in names if _is_module_name(n)}


_is_module_name = functools.lru_cache(maxsize=1 << 16)(is_module_name)  # a closure repeats names


def _search_roots(script: str, project_root: str) -> list[str]:
    script_dir = os.path.dirname(script)
    if not (script_dir + os.sep).startswith(project_root + os.sep):
        # Every name is relative to the root: one for a directory outside it would claim
        # that directory's name for every process that inherits the manifest.
        raise BundleError("%s lies outside the project root %s; give the root that holds it (--root, root=)"
                          % (script, project_root))
    return list(dict.fromkeys([script_dir, project_root]))


def project_root(start: PathLike) -> str:
    """The root a running driver belongs to: the nearest directory at or above `start` (a
    script, or a directory such as a kernel's working directory) holding one of
    ROOT_MARKERS, else `start`'s own directory."""
    start_dir = os.path.realpath(os.fspath(start))
    if not os.path.isdir(start_dir):
        start_dir = os.path.dirname(start_dir)
    directory = start_dir
    while not any(os.path.lexists(os.path.join(directory, marker)) for marker in ROOT_MARKERS):
        parent = os.path.dirname(directory)
        if parent == directory:
            return start_dir
        directory = parent
    return directory


def driver_root(scripts: Sequence[Script], root: PathLike | None) -> str:
    """The project root of a bundle the running driver makes (ship(), the integrations):
    `root` when given, else the first script's project root; for the modules a kernel
    imported, the one found from the working directory (the notebook's)."""
    if root is not None:
        return os.path.realpath(os.fspath(root))
    first = scripts[0] if scripts else None
    return project_root(os.getcwd() if first is None or isinstance(first, ImportedModule) else first)


def _search_root(name: str, path: str, package: bool) -> str | None:
    """The sys.path entry from which `name` loads `path`, or None when the file does not
    lie where its name says (a module loaded from a file location under another name)."""
    directory = os.path.dirname(path) if package else os.path.splitext(path)[0]
    for part in reversed(name.split(".")):
        if os.path.basename(directory) != part:
            return None
        directory = os.path.dirname(directory)
    return directory


def imported_local_modules(root: PathLike) -> list[ImportedModule]:
    """The modules this interpreter has imported from Python files under `root` and
    outside the standard library and site-packages, under the names it imported them by."""
    installed = _installed_dirs()
    under = os.path.realpath(os.fspath(root)) + os.sep
    found = []
    real_dirs: dict[str, str] = {}  # realpath per directory: a kernel has imported hundreds of modules
    for name, module in sorted(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        # hn_modulefix itself is never shipped: the layer or the install provides it.
        if name == "__main__" or name.split(".")[0] in ("hn_modulefix", "_hn_modulefix_boot") \
                or getattr(module, "__name__", None) != name or not isinstance(origin, str) \
                or not origin.endswith(".py"):
            continue
        directory = os.path.dirname(os.path.abspath(origin))
        if directory not in real_dirs:
            real_dirs[directory] = os.path.realpath(directory)
        path = os.path.join(real_dirs[directory], os.path.basename(origin))
        if not path.startswith(under) or path.startswith(installed) or not os.path.isfile(path):
            continue
        package = getattr(getattr(module, "__spec__", None), "submodule_search_locations", None) is not None
        search_root = _search_root(name, path, package)
        if search_root is None:
            warnings.warn("hn_modulefix: module %r is not shipped: its file %s does not lie where that name "
                          "would be found" % (name, path), stacklevel=4)
            continue
        found.append(ImportedModule(name, path, package, search_root))
    return found


def _collect(scripts: Sequence[str | ImportedModule], project_root: str, include: Sequence[str],
             looked: set[str]) -> dict[str, _Local]:
    installed = _installed_dirs()
    found: dict[str, _Local] = {}
    # (file, search roots) to resolve the imports of: for each name the file has (it
    # gains names when reached from other roots) and each of those roots, once.
    queue: list[tuple[str, tuple[str, ...]]] = []
    imports: dict[str, list[Import] | None] = {}
    resolved: set[tuple[str, str, tuple[str, ...]]] = set()  # (file, package context, roots)
    listed: set[tuple[str, tuple[str, ...]]] = set()  # (package's __init__.py, roots)
    # A large closure imports the same few thousand names tens of thousands of times:
    # each file is added, and each name located, once per set of search roots.
    added: set[tuple[str, bool, tuple[str, ...]]] = set()
    located: set[tuple[str, tuple[str, ...]]] = set()
    listing = _Listing()

    def add(path: str, package: bool, roots: tuple[str, ...]) -> None:
        key = (path, package, roots)
        if key in added:
            return
        added.add(key)
        real = os.path.realpath(path)
        if real.startswith(installed):
            return
        local = found.get(path)
        if local is None:
            local = found[path] = _Local(path, package)
        local.names.update(_names_for(path, package, roots))
        queue.append((path, roots))
        # Importing a dotted name runs every enclosing regular package's __init__ first.
        for root in roots:
            directory = os.path.dirname(os.path.dirname(path) if package else path)
            while (directory + os.sep).startswith(root + os.sep) and directory != root:
                if listing.isfile(directory, "__init__.py"):
                    add(os.path.join(directory, "__init__.py"), True, roots)
                directory = os.path.dirname(directory)

    def add_located(name: str, roots: tuple[str, ...]) -> None:
        key = (name, roots)
        if key not in located:
            located.add(key)
            for path, package in _locate(name, roots, listing):
                add(path, package, roots)

    for script in scripts:
        if isinstance(script, ImportedModule):
            # Found as the interpreter found it: under its own name, from its own sys.path entry.
            roots: tuple[str, ...] = (script.search_root,)
            add_located(script.name, roots)
        else:
            roots = tuple(_search_roots(script, project_root))
            add(script, False, roots)
        for extra in include:
            add_located(extra, roots)
    for extra in include:
        if not any(found[p].names & {extra} for p in found):
            raise BundleError("--include %r: no local module of that name next to the scripts or in %s"
                              % (extra, project_root))

    imported = {script.name for script in scripts if isinstance(script, ImportedModule)}
    with Pool() as pool:
        while queue:
            # Breadth first, in waves: the files of a wave are parsed on every core.
            wave = queue[:]
            del queue[:]
            imports.update(pool.scan(sorted({path for path, _ in wave} - imports.keys())))
            for path, roots in wave:
                local = found[path]
                found_imports = imports.get(path)
                if found_imports is None:
                    found_imports = imports[path] = _scan(path)  # raises what a helper could not say
                contexts = {n if local.package else n.rpartition(".")[0] for n in local.names} or {""}
                for context in sorted(contexts):  # the package each name resolves relative imports in
                    if (path, context, roots) not in resolved:
                        resolved.add((path, context, roots))
                        # A name the interpreter has already imported resolves to that module,
                        # wherever another search root would find a file of the same name.
                        for name in sorted(_imported_names(found_imports, context) - imported):
                            add_located(name, roots)
                if local.package and (path, roots) not in listed:
                    listed.add((path, roots))
                    # Submodules of a local package ship with it: packages load plugins by name.
                    directory = os.path.dirname(path)
                    for entry in sorted(listing.entries(directory)):
                        full = os.path.join(directory, entry)
                        stem, ext = os.path.splitext(entry)
                        if ext == ".py" and entry != "__init__.py" and stem.isidentifier():
                            add(full, False, roots)
                        elif entry.isidentifier() and listing.isfile(full, "__init__.py"):
                            add(os.path.join(full, "__init__.py"), True, roots)
    looked.update(listing.directories())
    return found


def _drop_ambiguous(found: dict[str, _Local]) -> None:
    claims: dict[str, list[str]] = {}
    for path, local in found.items():
        for name in local.names:
            claims.setdefault(name, []).append(path)
    for name, paths in sorted(claims.items()):
        if len(paths) > 1:
            warnings.warn("hn_modulefix: module name %r fits %s; it is left out of the bundle"
                          % (name, " and ".join(sorted(paths))), stacklevel=3)
            for path in paths:
                found[path].names.discard(name)
    for path, local in found.items():
        if not local.names:
            raise BundleError("%s: every name it is importable under is ambiguous; bundle the "
                              "scripts separately or give --root" % path)


def _standard_names() -> frozenset[str]:
    names = getattr(sys, "stdlib_module_names", None)  # Python 3.10+
    if names is not None:
        return frozenset(names)
    found = set(sys.builtin_module_names)
    stdlib = sysconfig.get_paths()["stdlib"]
    for directory in (stdlib, os.path.join(stdlib, "lib-dynload")):
        for entry in os.listdir(directory) if os.path.isdir(directory) else ():
            stem = entry.split(".")[0]
            if entry.endswith((".py", ".so")) or os.path.isfile(os.path.join(directory, entry, "__init__.py")):
                found.add(stem)
    return frozenset(found)


def _drop_standard(found: dict[str, _Local]) -> None:
    """A script-side `logging.py` never reached the driver, which had imported the standard
    module first; shipping it would hand it to every worker instead."""
    standard = _standard_names()
    for path, local in sorted(found.items()):
        dropped = sorted(n for n in local.names if n.split(".")[0] in standard)
        if dropped:
            warnings.warn("hn_modulefix: %s is not shipped as %s: the standard library has that module, and "
                          "every process imports the standard one, as the driver does"
                          % (path, ", ".join(dropped)), stacklevel=3)
            local.names.difference_update(dropped)


def _warn_installed(found: dict[str, _Local]) -> None:
    from importlib.machinery import PathFinder

    site_dirs = [d for d in _installed_dirs() if os.path.basename(d.rstrip(os.sep)) in ("site-packages", "dist-packages")]
    tops = {name.split(".")[0]: path for path, local in sorted(found.items()) for name in local.names}
    for top, path in sorted(tops.items()):
        spec = PathFinder.find_spec(top, site_dirs)
        if spec is not None:
            where = spec.origin or ", ".join(spec.submodule_search_locations or ())
            warnings.warn("hn_modulefix: %r is also an installed module (%s); with this bundle every process "
                          "gets the script's (%s) instead" % (top, where, path), stacklevel=3)


def _relpath_for(local: _Local) -> str:
    # The longest name is the most qualified and unique: lay the file out by it.
    name = max(sorted(local.names), key=lambda n: n.count("."))
    parts = name.split(".")
    leaf = parts + ["__init__.py"] if local.package else parts[:-1] + [parts[-1] + ".py"]
    return "/".join([MODULES_DIR] + leaf)


def _bundle_files(out: str) -> tuple[set[str], set[str]]:
    """The files (relative, "/"-separated) and directories an earlier bundle in `out`
    wrote: its manifest, names.txt, every listed file and its bytecode caches.  Raises
    BundleError when `out` holds no valid hn_modulefix manifest."""
    from hn_modulefix._manifest import ManifestError, load

    manifest_path = os.path.join(out, MANIFEST_NAME)
    try:
        if not os.path.isfile(manifest_path):
            raise ManifestError("it has no %s" % MANIFEST_NAME)
        manifest = load(manifest_path)
    except ManifestError as exc:
        raise BundleError("%s exists and is not an hn_modulefix bundle (%s); refusing to replace it, which "
                          "would delete %s" % (out, exc, _shown_paths(_lost(out, set(), set())))) from exc
    files = {MANIFEST_NAME, NAMES_FILE, INDEX_NAME}
    directories: set[str] = set()
    for source in manifest.sources:
        parents = source.relpath.split("/")[:-1]
        files.add(source.relpath)
        directories.update("/".join(parents[:i]) for i in range(1, len(parents) + 1))
        directories.add("/".join(parents + ["__pycache__"]))
    return files, directories


def _lost(out: str, files: set[str], directories: set[str], relative: str = "") -> list[str]:
    """What replacing `out` would delete beyond `files`, the bytecode caches of those
    files, and `directories` (relative paths; a directory nobody listed ends in "/")."""
    lost = []
    for entry in sorted(os.scandir(os.path.join(out, relative) if relative else out), key=lambda e: e.name):
        path = relative + entry.name
        if entry.is_dir(follow_symlinks=False):
            if path not in directories:
                inside = _lost(out, set(), set(), path + "/")
                lost.extend(inside or [path + "/"])
            else:
                lost.extend(_lost(out, files, directories, path + "/"))
        elif path not in files and not _is_cache_of(path, files):
            lost.append(path)
    return lost


def _is_cache_of(path: str, files: set[str]) -> bool:
    """Whether `path` is the bytecode cache (any interpreter, any optimization level) of
    one of `files`: DIR/__pycache__/STEM.TAG[.opt-N].pyc for DIR/STEM.py."""
    directory, _, name = path.rpartition("/")
    parent, _, cache = directory.rpartition("/")
    if cache != "__pycache__" or not name.endswith(".pyc"):
        return False
    stem = name.split(".", 1)[0]
    return ("%s/%s.py" % (parent, stem) if parent else stem + ".py") in files


def _shown_paths(paths: list[str], shown: int = 10) -> str:
    more = " and %d more" % (len(paths) - shown) if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def new_dir(parent: str, prefix: str) -> str:
    """A new empty directory in `parent` whose mode follows the umask, as a bundle's files
    do (tempfile.mkdtemp makes 0700: a bundle copied into an image or a shared directory
    would be unreadable to anyone else)."""
    while True:
        path = os.path.join(parent, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: str, b: str) -> None:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE), so that no
    process ever finds either path missing; OSError where the system cannot."""
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available here")
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), a, None, b)


def replace_dir(new: str, out: str) -> None:
    """Put the directory `new` at `out` in place of the one there; the old one is removed.
    If that fails, the old directory is left at `out`, whole."""
    try:
        exchange(new, out)
    except OSError:
        # No atomic exchange (another system, a filesystem without it): for a moment
        # between the two renames `out` is missing.
        trash = new_dir(os.path.dirname(out), ".hn_modulefix-old-")
        old = os.path.join(trash, "old")
        os.rename(out, old)
        try:
            os.rename(new, out)
        except BaseException:
            os.rename(old, out)
            os.rmdir(trash)
            raise
        shutil.rmtree(trash, ignore_errors=True)
    else:
        shutil.rmtree(new, ignore_errors=True)  # the old one, now


def _replace_dir(staging: str, out: str) -> None:
    """Move the finished bundle into place.  An earlier bundle there is replaced, so no
    stale module outlives a re-bundle, but only when everything in the directory is
    something that bundle wrote: nothing else is ever deleted."""
    if os.path.lexists(out):
        if not os.path.isdir(out):
            raise BundleError("%s exists and is not a directory; refusing to replace it" % out)
        if os.listdir(out):
            files, directories = _bundle_files(out)
            lost = _lost(out, files, directories)
            if lost:
                raise BundleError("%s holds files its bundle does not list; refusing to replace it, which would "
                                  "delete %s (move them away or bundle to another directory)"
                                  % (out, _shown_paths(lost)))
        replace_dir(staging, out)
    else:
        os.rename(staging, out)


class _Planned:
    """One file of a bundle-to-be: where it is, what it holds, the names it is listed under."""

    __slots__ = ("path", "package", "names", "relpath", "data", "sha256")

    def __init__(self, local: _Local) -> None:
        self.path = local.path
        self.package = local.package
        self.names = tuple(sorted(local.names, key=lambda n: (n.count("."), n)))
        self.relpath = _relpath_for(local)
        with open(local.path, "rb") as f:
            self.data = f.read()
        self.sha256 = sha256_bytes(self.data)  # once: ship() names the bundle, then writes it

    def source(self, directory: str) -> Source:
        return Source(self.names, self.relpath, os.path.join(directory, *self.relpath.split("/")),
                      self.sha256, self.package, self.path)


def plan(*scripts: Script, root: PathLike | None = None, include: Iterable[str] = (),
         read: set[str] | None = None) -> list[_Planned]:
    """What `bundle` would ship, read now: every file of the scripts' local closure.
    `read`, when given, receives every file read and directory searched: while none of
    them changes, neither does the plan."""
    if not scripts:
        raise BundleError("no script given")
    project_root = os.path.realpath(os.fspath(root) if root is not None else os.getcwd())
    script_paths: list[str | ImportedModule] = []
    for script in scripts:
        if isinstance(script, ImportedModule):
            script_paths.append(script)
            continue
        path = os.path.realpath(os.fspath(script))
        if not os.path.exists(path):
            raise BundleError("%s: does not exist" % os.fspath(script))
        if not os.path.isfile(path) or not path.endswith(".py"):
            raise BundleError("%s: not a Python source file" % os.fspath(script))
        script_paths.append(path)
    extra = list(include)
    for name in extra:
        if not is_module_name(name):
            raise BundleError("--include %r is not a dotted module name" % (name,))
    looked: set[str] = set()
    found = _collect(script_paths, project_root, extra, looked)
    if read is not None:
        read.update(looked, found)
    _drop_ambiguous(found)
    _drop_standard(found)
    _warn_installed(found)
    try:
        return [_Planned(local) for _, local in sorted(found.items(), key=lambda item: sorted(item[1].names))
                if local.names]
    except OSError as exc:
        raise BundleError("cannot read %s: %s" % (exc.filename, exc.strerror or exc)) from exc


def _roots(planned: Sequence[_Planned], snapshot: bool) -> set[str]:
    """The directories the bundle comes from: each one its files are importable from
    under their names, and for a snapshot the running driver's main script's (its spawn
    children run that script again, with that directory first on sys.path)."""
    roots = {enclosing(item.path, item.package, name.count(".") + 1) for item in planned for name in item.names}
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if snapshot and isinstance(main, str) and main.endswith(".py"):
        roots.add(os.path.dirname(os.path.realpath(main)))
    return roots


def snapshot_digest(planned: Sequence[_Planned]) -> str:
    """The content name of a snapshot of `planned`: the sha256 of the manifest it would
    have, with the driver's paths and without a bundle directory."""
    return sha256_bytes(dump([item.source("") for item in planned], True, _roots(planned, True)).encode())


def write_into(planned: Sequence[_Planned], directory: str, *, snapshot: bool = False) -> str:
    """Write the planned files, manifest.json, names.txt and index.txt into the empty `directory`;
    return the manifest path.  `snapshot`: the bundle is made by the running driver of the
    bytes it runs (see hn_modulefix._manifest), not ahead of time."""
    sources = []
    for item in planned:
        source = item.source(directory)
        os.makedirs(os.path.dirname(source.path), exist_ok=True)
        with open(source.path, "wb") as f:
            f.write(item.data)
        sources.append(source)
    manifest = os.path.join(directory, MANIFEST_NAME)
    text = dump(sources, snapshot, _roots(planned, snapshot)).encode("utf-8")
    names = dump_names(Manifest(manifest, sources)).encode("utf-8")
    index = dump_index(text, names)
    for name, data in ((MANIFEST_NAME, text), (NAMES_FILE, names),
                       (INDEX_NAME, None if index is None else index.encode("ascii"))):
        if data is not None:  # an index always, for the bundler's ASCII manifest
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
    return manifest


def write(planned: Sequence[_Planned], out: PathLike, *, snapshot: bool = False) -> Path:
    """Write the planned files, manifest.json and names.txt into `out`; return the manifest path."""
    out_path = os.path.abspath(os.fspath(out))
    parent = os.path.dirname(out_path)
    os.makedirs(parent, exist_ok=True)
    staging = new_dir(parent, ".hn_modulefix-new-")
    try:
        write_into(planned, staging, snapshot=snapshot)
        _replace_dir(staging, out_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Path(out_path, MANIFEST_NAME)


def driver_snapshot(scripts: Sequence[Script], root: PathLike | None, include: Iterable[str],
                    prefix: str) -> tuple[str, Path]:
    """The bundle an integration sends: a snapshot (the bytes the running driver reads
    now, whatever another machine holds at the original paths) of `scripts` and their
    closure from `root` (default: their project root), in ``bundle/`` of a new directory
    named with `prefix`.  The engine reads it after the caller returns, so the directory is
    removed at exit; the integration stages what travels with the bundle there too.
    Returns the directory and the manifest path."""
    planned = plan(*scripts, root=driver_root(scripts, root), include=include)
    staging = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    return staging, write(planned, os.path.join(staging, "bundle"), snapshot=True)


def calling_scripts(caller: dict[str, object], api: str, root: PathLike | None = None) -> list[Script]:
    """What `api` ships by default: the file of the module whose globals are `caller`; for
    an interactive `__main__` (a Jupyter kernel, IPython), which has none, the modules it
    has imported from the project: `root`, else the one found from the working directory
    (a kernel's is the notebook's directory) upward."""
    script = caller.get("__file__")
    if isinstance(script, str) and script:
        return [script]
    if caller.get("__name__") != "__main__":
        raise ValueError("%s: the calling module %r has no file; pass the script to ship"
                         % (api, caller.get("__name__")))
    project = driver_root((), root)
    modules: list[Script] = list(imported_local_modules(project))
    if not modules:
        raise ValueError("%s: called from an interactive __main__ (a notebook?) that has imported no module of "
                         "the project %s: import your modules before calling it, or pass root= or the script"
                         % (api, project))
    return modules


def bundle(*scripts: Script, out: PathLike, root: PathLike | None = None,
           include: Iterable[str] = ()) -> Path:
    """Copy `scripts` and their local import closure into `out`; return the manifest path.

    `root` is the project root (default: the current directory), from which scripts are
    also importable by dotted name (``scripts.pipeline``).  `include` adds modules that
    are imported in ways the source does not show, by dotted name.
    """
    return write(plan(*scripts, root=root, include=include), out)


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scripts", nargs="+", metavar="SCRIPT")
    parser.add_argument("-o", "--out", required=True, metavar="DIR",
                        help="bundle directory (an earlier bundle there is replaced; nothing else is deleted)")
    parser.add_argument("--root", metavar="DIR", help="project root the scripts are importable from (default: cwd)")
    parser.add_argument("--include", action="append", default=[], metavar="MODULE",
                        help="also ship this local module (imported in a way the source does not show)")


def cli_run(args: argparse.Namespace) -> int:
    from hn_modulefix._manifest import load

    manifest_path = bundle(*args.scripts, out=args.out, root=args.root, include=args.include)
    rows = [(", ".join(source.names), source.relpath) for source in load(str(manifest_path)).sources]
    width = max([len(names) for names, _ in rows] + [0])
    for names, relpath in rows:
        print("%-*s  %s" % (width, names, relpath))
    print(manifest_path)
    return 0
