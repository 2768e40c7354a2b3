"""The bundle cache of `ship()`: ``$XDG_CACHE_HOME/hn_modulefix`` (private to its user).

``bundles/<digest>/`` is one bundle, named by its content, with three files of the cache's
own beside the manifest:

- ``.lock``: every process that exported the bundle holds a shared `flock` on it for the
  rest of its life; the pruner removes only an entry it can lock exclusively;
- ``.used``: its mtime is the entry's last use;
- ``.stamp``: written last, the size, mtime, inode and ctime of every file as written.

An entry is put in place whole (staged beside it, then renamed) and is never changed
after; a reused entry is checked against its stamp and rewritten when it differs.  The
stamp stands in for each file's sha256 (measured on 2,502 files: 0.02-0.03 s against
0.4 s); what it cannot see (bytes rotting on disk, times unchanged) the finder still
refuses at import, by sha256.
Entries are put in place and pruned under ``bundles/.install.lock``, so a complete entry
another process uses is never replaced by a second copy of itself.

``index/<key>.json`` maps what `ship()` was asked (scripts, root, include, interpreter) to
the digest it produced, with the stat of every file and directory the closure was read
from, so an unchanged project is shipped again without reading its sources.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
import time
from typing import Callable, Iterator, Sequence

from hn_modulefix._manifest import MANIFEST_NAME, ManifestError, load

ENV_MAX_AGE = "HN_MODULEFIX_CACHE_MAX_AGE"
DEFAULT_MAX_AGE = "7d"
LOCK = ".lock"
USED = ".used"
STAMP = ".stamp"
_OWN = (LOCK, USED, STAMP)
_INSTALL_LOCK = ".install.lock"
_STAGED = ".new-"
_TRASH = ".old-"
# A staged or half-deleted directory nobody holds is a crashed writer's: gone after this.
_LEFTOVER_AGE = 3600.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

# Entry directory -> the descriptor of its .lock this process holds (shared) until exit.
_held: dict[str, int] = {}


def home() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "hn_modulefix")
    try:
        mode = os.stat(directory).st_mode
    except FileNotFoundError:
        os.makedirs(base, exist_ok=True)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
    else:
        if mode & 0o077:
            os.chmod(directory, 0o700)  # other users may not read what a driver's scripts hold
    return directory


def bundles_dir() -> str:
    directory = os.path.join(home(), "bundles")
    os.makedirs(directory, exist_ok=True)
    return directory


def parse_age(text: str) -> float:
    """Seconds in `text`: a number with an optional unit s, m, h or d (default d)."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "d")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError("%r is not an age: give a number of days, or a number followed by s, m, h or d "
                         "(e.g. 7d, 12h)" % (text,))
    return seconds


def max_age() -> float:
    try:
        return parse_age(os.environ.get(ENV_MAX_AGE) or DEFAULT_MAX_AGE)
    except ValueError as exc:
        raise ValueError("%s=%s" % (ENV_MAX_AGE, exc)) from None


def _age_argument(text: str) -> float:
    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- locks -------------------------------------------------------------------------------


class _Lock:
    """An exclusive flock on a file, held within a `with`."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> "_Lock":
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _hold(entry: str) -> bool:
    """Take (or keep) this process's shared lock on `entry`; False if it has no lock file.
    A lock on a lock file no longer at `entry` (pruned or replaced meanwhile) is let go."""
    lock = os.path.join(entry, LOCK)
    for _ in range(2):
        fd = _held.pop(entry, None)
        if fd is None:
            try:
                fd = os.open(lock, os.O_RDONLY)
            except OSError:
                return False
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a pruner moves the entry aside
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except OSError:
            same = False
        if same:
            _held[entry] = fd
            return True
        os.close(fd)
    return False


def _in_use(entry: str) -> bool:
    """Whether a live process holds `entry` (a missing lock file counts as not held)."""
    try:
        fd = os.open(os.path.join(entry, LOCK), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


# -- entries -----------------------------------------------------------------------------


def _fingerprint(st: os.stat_result) -> list[int]:
    """What tells a file written once from any later state of it: any write changes its
    ctime, which nothing can set back."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def _stamp(entry: str, relative: str = "") -> dict[str, list[int] | None]:
    """Every file and directory under `entry` except the cache's own files and bytecode
    caches (workers may write those beside the shipped copies), by relative "/"-separated
    path: a file with its size, mtime, inode and ctime; a directory only has to be there
    (workers writing __pycache__ change its times)."""
    found: dict[str, list[int] | None] = {}
    with os.scandir(os.path.join(entry, relative) if relative else entry) as scan:
        for item in scan:
            path = relative + item.name
            if item.is_dir(follow_symlinks=False):
                if item.name != "__pycache__":
                    found[path + "/"] = None
                    found.update(_stamp(entry, path + "/"))
            elif relative or item.name not in _OWN:
                found[path] = _fingerprint(item.stat(follow_symlinks=False))
    return found


def _write_stamp(entry: str) -> None:
    stamp = _stamp(entry)
    staged = os.path.join(entry, STAMP + ".new")
    with open(staged, "w", encoding="utf-8") as f:
        json.dump(stamp, f, separators=(",", ":"))
    os.rename(staged, os.path.join(entry, STAMP))


def intact(entry: str) -> bool:
    """Whether `entry` holds exactly what was written: the same files, none changed since
    (see _fingerprint), none added."""
    try:
        with open(os.path.join(entry, STAMP), encoding="utf-8") as f:
            recorded = json.load(f)
        return isinstance(recorded, dict) and recorded == _stamp(entry)
    except (OSError, ValueError):
        return False


def _leftover(path: str) -> bool:
    try:
        old = time.time() - os.stat(path).st_mtime > _LEFTOVER_AGE
    except OSError:
        return False
    return old and not _in_use(path)


def reuse(digest: str) -> str | None:
    """The manifest of cache entry `digest` if it is there and intact, held by this process
    until it exits."""
    entry = os.path.join(bundles_dir(), digest)
    return _used(entry) if _hold(entry) and intact(entry) else None


def use(digest: str, write: Callable[[str], object]) -> str:
    """The manifest of cache entry `digest`, held by this process until it exits; `write`
    fills an empty directory with the bundle when the entry is missing or damaged."""
    reused = reuse(digest)
    if reused is not None:
        return reused
    bundles = bundles_dir()
    entry = os.path.join(bundles, digest)
    staged = os.path.join(bundles, _STAGED + digest + "-" + os.urandom(6).hex())
    os.mkdir(staged)
    lock = None
    try:
        open(os.path.join(staged, LOCK), "w").close()
        lock = os.open(os.path.join(staged, LOCK), os.O_RDONLY)
        fcntl.flock(lock, fcntl.LOCK_SH)  # in use from the moment it is in place
        write(staged)
        open(os.path.join(staged, USED), "w").close()
        _write_stamp(staged)
        with _Lock(os.path.join(bundles, _INSTALL_LOCK)):
            if _hold(entry) and intact(entry):
                # Another process put a sound copy in place first: use that one.
                os.close(lock)
                lock = None
                shutil.rmtree(staged, ignore_errors=True)
                return _used(entry)
            stale = _held.pop(entry, None)
            if stale is not None:
                os.close(stale)
            if os.path.lexists(entry):
                from hn_modulefix._bundle import replace_dir

                replace_dir(staged, entry)  # the damaged one goes; the sound one is never missing
            else:
                os.rename(staged, entry)
        _held[entry] = lock
        lock = None
    except BaseException:
        if lock is not None:
            os.close(lock)
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return _used(entry)


def _used(entry: str) -> str:
    os.utime(os.path.join(entry, USED))
    return os.path.join(entry, MANIFEST_NAME)


class Entry:
    __slots__ = ("path", "digest", "last_used", "size", "in_use", "modules")

    def __init__(self, path: str) -> None:
        self.path = path
        self.digest = os.path.basename(path)
        try:
            self.last_used: float | None = os.stat(os.path.join(path, USED)).st_mtime
        except OSError:
            self.last_used = None
        self.size = sum(entry.stat(follow_symlinks=False).st_size for entry in _scan(path))
        self.in_use = _in_use(path)
        try:
            self.modules: int | None = len(load(os.path.join(path, MANIFEST_NAME)).sources)
        except ManifestError:
            self.modules = None


def _scan(directory: str) -> Iterator[os.DirEntry[str]]:
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            yield from _scan(entry.path)
        else:
            yield entry


def entries() -> list[Entry]:
    bundles = bundles_dir()
    return [Entry(os.path.join(bundles, name)) for name in sorted(os.listdir(bundles))
            if not name.startswith(".") and os.path.isdir(os.path.join(bundles, name))]


def prune(older_than: float, now: float | None = None) -> list[str]:
    """Remove the entries last used more than `older_than` seconds ago that no live process
    holds, and leftovers of crashed writers; return the digests removed."""
    bundles = bundles_dir()
    cutoff = (time.time() if now is None else now) - older_than
    removed = []
    with _Lock(os.path.join(bundles, _INSTALL_LOCK)):
        for name in sorted(os.listdir(bundles)):
            path = os.path.join(bundles, name)
            if name.startswith((_STAGED, _TRASH)):
                if _leftover(path):
                    shutil.rmtree(path, ignore_errors=True)
                continue
            if name.startswith(".") or not os.path.isdir(path) or path in _held:
                continue
            try:
                last_used = os.stat(os.path.join(path, USED)).st_mtime
            except OSError:
                last_used = os.stat(path).st_mtime  # a damaged entry: its own age
            if last_used > cutoff:
                continue
            try:
                lock: int | None = os.open(os.path.join(path, LOCK), os.O_RDONLY)
            except OSError:
                lock = None  # a damaged entry without its lock file: nobody can hold it
            if lock is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(lock)
                    continue  # a live process exported it
            # Moved aside while locked: a process about to take the entry finds it gone
            # once the lock is free, and writes it anew.
            trash = os.path.join(bundles, _TRASH + name + "-" + os.urandom(6).hex())
            os.rename(path, trash)
            if lock is not None:
                os.close(lock)
            shutil.rmtree(trash, ignore_errors=True)
            removed.append(name)
    index = os.path.join(home(), "index")
    for name in os.listdir(index) if os.path.isdir(index) else ():
        path = os.path.join(index, name)
        try:
            if os.stat(path).st_mtime <= cutoff:
                os.unlink(path)
        except OSError:
            pass
    return removed


# -- the index of unchanged projects -----------------------------------------------------


def _stat_or_none(path: str) -> list[int] | None:
    try:
        return _fingerprint(os.stat(path))
    except OSError:
        return None


def index_path(key: str) -> str:
    return os.path.join(home(), "index", key + ".json")


def recall(key: str) -> tuple[str, list[str]] | None:
    """The digest and warnings recorded for `key`, if every file and directory it was read
    from is as it was."""
    try:
        with open(index_path(key), encoding="utf-8") as f:
            record = json.load(f)
        watched = record["stat"]
        digest = record["digest"]
        warned = record["warnings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for path, stat in watched.items():
        if _stat_or_none(path) != stat:
            return None
    try:
        os.utime(index_path(key))  # in use: not pruned
    except OSError:
        pass
    return digest, warned


def remember(key: str, digest: str, paths: Sequence[str], warned: Sequence[str], started_ns: int) -> None:
    """Record `digest` for `key` with the stat of `paths`, unless one of them changed too
    recently to be sure the bundle read its present content (file times are coarse)."""
    watched = {path: _stat_or_none(path) for path in paths}
    if any(stat is not None and max(stat[1], stat[3]) >= started_ns - 1_000_000_000 for stat in watched.values()):
        return
    path = index_path(key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staged = "%s.%d.new" % (path, os.getpid())
    with open(staged, "w", encoding="utf-8") as f:
        json.dump({"digest": digest, "warnings": list(warned), "stat": watched}, f, separators=(",", ":"))
    os.replace(staged, path)


# -- hn-modulefix cache --------------------------------------------------------------------


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return "%.1f%s" % (seconds / size, unit)
    return "%ds" % seconds


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prune", action="store_true",
                        help="remove the bundles no live process uses that were last used longer ago than --older-than")
    parser.add_argument("--older-than", metavar="AGE", type=_age_argument,
                        help="for --prune: a number of days, or a number with s, m, h or d "
                             "(default: $%s, else %s)" % (ENV_MAX_AGE, DEFAULT_MAX_AGE))


def cli_run(args: argparse.Namespace) -> int:
    if args.older_than is not None and not args.prune:
        print("hn-modulefix cache: error: --older-than goes with --prune", file=sys.stderr)
        return 2
    if args.prune:
        older_than = args.older_than if args.older_than is not None else max_age()
        for digest in prune(older_than):
            print("removed %s" % digest)
        return 0
    now = time.time()
    print("%s  %s  %s  %s  %s" % ("BUNDLE".ljust(24), "LAST USED".rjust(9), "SIZE".rjust(9), "IN USE", "MODULES"))
    for entry in entries():
        used = "?" if entry.last_used is None else _age(max(0.0, now - entry.last_used)) + " ago"
        print("%s  %s  %s  %s  %s" % (entry.digest.ljust(24), used.rjust(9), ("%.1f kB" % (entry.size / 1000)).rjust(9),
                                      ("yes" if entry.in_use else "no").ljust(6),
                                      "damaged" if entry.modules is None else entry.modules))
    print(bundles_dir())
    return 0
