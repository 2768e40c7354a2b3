"""The interpreters the suite runs on besides its own: Debian chroots built with
`debootstrap --variant=minbase` from the mirror this machine's apt sources name, and venvs
of other package versions, all cached under the user's cache directory.

bullseye has Python 3.9, trixie 3.13, sid 3.14 and 3.15 (3.10 and 3.12 are in no current
Debian suite). Each build runs once, under a lock (concurrent test runs share it), and is
marked complete last (an interrupted build is built again); a chroot takes one to two
minutes here, 2-5 minutes on a slower mirror. Builds start in the background as soon as
the tests that need them are collected (conftest.py). Commands run in a private mount
namespace (`unshare --mount`) with /proc, /dev, a fresh /tmp and the test run's temporary
directory bound at /w: nothing stays mounted when a command ends.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from _support import clean_env, make_venv, venv_site

# Packages per suite; the list is also the cache key (a changed list rebuilds the chroot).
SUITES: dict[str, tuple[str, ...]] = {
    "bullseye": ("python3.9", "python3.9-venv", "python3-distutils", "python3-lib2to3", "ca-certificates"),
    "trixie": ("python3.13", "python3.13-venv", "ca-certificates"),
    "sid": ("python3.14", "python3.14-venv", "python3.15", "python3.15-venv", "ca-certificates"),
}
PYTHONS = {"3.9": "bullseye", "3.13": "trixie", "3.14": "sid", "3.15": "sid"}
STAMP = ".hn_modulefix-tests-build.json"  # written last: what a cached build was made for
BIND = "/w"  # where the host directory of a run appears inside the chroot
PIP_CERT = "/etc/hn_modulefix-tests/pip-cert.pem"  # the host's certificate bundle, copied in


class Unavailable(Exception):
    """Chroots cannot be built here; the message says why."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hn_modulefix-tests"


def _apt_entries() -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every enabled entry in this machine's apt sources, one-line and deb822."""
    for path in sorted(glob.glob("/etc/apt/sources.list") + glob.glob("/etc/apt/sources.list.d/*.list")):
        for line in Path(path).read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] == ["deb"]:
                words = [w for w in words[1:] if not w.startswith("[")]  # drop [options]
                if len(words) >= 2:
                    yield words[0], [words[1]]
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in Path(path).read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                for uri in fields.get("uris", "").split():
                    yield uri, fields.get("suites", "").split()


def mirror() -> str:
    """The Debian mirror of this machine's own release in its apt sources."""
    release = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            release = line.split("=", 1)[1].strip('"')
    for uri, suites in _apt_entries():
        if release and release in suites:
            return uri
    raise Unavailable("no apt source for this machine's release %r in /etc/apt/sources.list*" % release)


def _install_debootstrap() -> None:
    """debootstrap from Debian's packages where it is missing (a fresh machine), as root."""
    if shutil.which("debootstrap") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        with _lock_file(cache_root() / "apt.lock"):
            if shutil.which("debootstrap") is None:
                for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "debootstrap"]):
                    subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def why_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "building a Debian chroot needs root"
    _install_debootstrap()
    for tool in ("debootstrap", "unshare", "chroot"):
        if shutil.which(tool) is None:
            return "%s is not installed and apt-get could not install it" % tool
    try:
        mirror()
    except (Unavailable, OSError) as exc:
        return str(exc)
    return None


@contextlib.contextmanager
def _lock_file(path: Path) -> Iterator[None]:
    """Held by one thread of one process at a time (the lock is per open file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _cached(directory: Path, want: dict[str, object], build: Callable[[Path], None]) -> Path:
    """`directory`, first built by `build(directory)` unless its stamp says it was built for
    `want`; under a lock. The stamp is written last: an interrupted build is built again."""
    with _lock_file(directory.parent / (directory.name + ".lock")):
        stamp = directory / STAMP
        if not (stamp.is_file() and json.loads(stamp.read_text()) == want):
            # In place: venvs hold their own absolute path.
            shutil.rmtree(directory, ignore_errors=True)
            build(directory)
            stamp.write_text(json.dumps(want))
    return directory


def _checked(argv: list[str]) -> None:
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(argv), done.returncode, done.stdout[-3000:]))


def chroot(suite: str) -> Path:
    """The cached chroot of `suite`, built first if missing or built for other packages."""
    reason = why_unavailable()
    if reason:
        raise Unavailable(reason)
    packages = SUITES[suite]

    def build(target: Path) -> None:
        _checked(["debootstrap", "--variant=minbase", "--include=" + ",".join(packages), suite, str(target),
                  mirror()])
        (target / BIND.lstrip("/")).mkdir()

    target = _cached(cache_root() / "chroots" / suite, {"suite": suite, "packages": list(packages)}, build)
    # pip in the chroot trusts what pip on the host trusts (a proxy's CA, say).
    cert = os.environ.get("PIP_CERT")
    if cert and os.path.isfile(cert):
        copy = target / PIP_CERT.lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cert, copy)
    return target


# Runs in the new mount namespace: $0 the chroot, $1 the host directory for /w, then the command.
_ENTER = """set -e
mount -t proc proc "$0/proc"
mount --rbind /dev "$0/dev"
mount -t tmpfs tmpfs "$0/tmp"
if [ -n "$1" ]; then mount --bind "$1" "$0%s"; fi
root=$0; shift 1
exec chroot "$root" "$@"
""" % BIND


def command(root: Path, workdir: Path | None, argv: Sequence[str], env: dict[str, str], cwd: str = "/") -> list[str]:
    """`argv` run as root in the chroot `root` with `workdir` bound at /w, in `cwd`, with only
    `env` and a PATH, HOME and LANG."""
    variables = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    if (root / PIP_CERT.lstrip("/")).is_file():
        variables["PIP_CERT"] = PIP_CERT
    variables.update(env)
    inner = ["env", "-i", "--chdir=" + cwd] + ["%s=%s" % kv for kv in sorted(variables.items())] + list(argv)
    return ["unshare", "--mount", "--", "sh", "-c", _ENTER, str(root), str(workdir or "")] + inner


class Python:
    """A venv of one interpreter, the host's or a chroot's, and how its commands see paths.

    Paths given to `run` and `path` are host paths; in a chroot they must lie under
    `workdir`, which commands see at /w."""

    def __init__(self, version: str, venv: Path, workdir: Path, root: Path | None = None) -> None:
        self.version, self.venv, self.workdir, self.root = version, venv, workdir, root
        self.python = self.path(venv / "bin" / "python")

    def __repr__(self) -> str:
        return "<Python %s in %s>" % (self.version, self.root or "the host")

    @property
    def version_info(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.version.split("."))

    def path(self, host: Path) -> str:
        if self.root is None:
            return str(host)
        return BIND + "/" + str(host.relative_to(self.workdir)) if host != self.workdir else BIND

    def run(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`argv` ("python" as its first word: this venv's interpreter) in `cwd` with only
        `env` besides the basics (the host: the caller's environment without hn_modulefix's)."""
        argv = [self.python if arg == "python" else arg for arg in argv[:1]] + list(argv[1:])
        if self.root is None:
            command_ = argv
            full_env = clean_env(**(env or {}))
        else:
            command_ = command(self.root, self.workdir, argv, env or {}, cwd=self.path(cwd))
            full_env = None
        return subprocess.run(command_, cwd=cwd, env=full_env, timeout=timeout, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)

    def site(self) -> Path:
        """The venv's site-packages, as a host path."""
        done = self.run(["python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=self.venv)
        assert done.returncode == 0, done.stderr
        inside = done.stdout.strip()
        if self.root is None:
            return Path(inside)
        return self.workdir / os.path.relpath(inside, BIND)


def host_python(venv: Path, wheel: Path, site_packages: str | None = None) -> Python:
    """A venv of the host's interpreter with hn_modulefix pip-installed from `wheel`."""
    make_venv(venv, wheel=wheel, site_packages=site_packages)
    return Python("%d.%d" % sys.version_info[:2], venv, venv.parent)


def chroot_python(version: str, venv: Path, workdir: Path, wheel: Path, site_packages: str | None = None) -> Python:
    """A venv of `version` in its chroot at `venv` (under `workdir`) with hn_modulefix
    pip-installed from `wheel` by the chroot's own pip, offline."""
    python = Python(version, venv, workdir, get(PYTHONS[version]))
    for argv in (["python" + version, "-m", "venv", python.path(venv)],
                 ["python", "-m", "pip", "install", "-q", "--no-index", "--no-deps", python.path(wheel)]):
        done = python.run(argv, cwd=workdir)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
    if site_packages:
        (python.site() / "zz_test_packages.pth").write_text(site_packages + "\n")
    return python


def venv_python(version: str, venv: Path, workdir: Path, wheel: Path) -> Python:
    """A venv of Python `version`, the host's or a chroot's, with hn_modulefix from `wheel`."""
    if version == "%d.%d" % sys.version_info[:2]:
        return host_python(venv, wheel)
    return chroot_python(version, venv, workdir, wheel)


def chroot_packages(version: str, requirements: Sequence[str]) -> str:
    """The site-packages (as the chroot sees it) of a cached venv of `version` in its chroot
    with `requirements` pip-installed from the registry."""
    root = get(PYTHONS[version])
    inside = "/opt/hn_modulefix-tests/py%s-%s" % (version, "-".join(r.replace("==", "-") for r in requirements))

    def build(directory: Path) -> None:
        for argv in (["python" + version, "-m", "venv", inside],
                     [inside + "/bin/python", "-m", "pip", "install", "-q", *requirements]):
            _checked(command(root, None, argv, {}))

    _cached(root / inside.lstrip("/"), {"python": version, "requirements": list(requirements)}, build)
    return "%s/lib/python%s/site-packages" % (inside, version)


def host_packages(requirements: Sequence[str]) -> str:
    """The site-packages of a cached venv of the host's interpreter with `requirements`
    pip-installed (for package versions that cannot share this environment)."""
    tag = "py%d.%d" % sys.version_info[:2]
    venv = cache_root() / "venvs" / ("%s-%s" % (tag, "-".join(r.replace("==", "-") for r in requirements)))

    def build(directory: Path) -> None:
        _checked([sys.executable, "-m", "venv", str(directory)])
        _checked([str(directory / "bin" / "python"), "-m", "pip", "install", "-q", *requirements])

    _cached(venv, {"python": sys.version, "requirements": list(requirements)}, build)
    return str(venv_site(venv))


# Package sets the tests use besides their own environment's.
DAFT_06 = ("daft==0.6.14", "hypernodes==0.4.8", "pydantic")  # HyperNodes 0.4.8 needs daft 0.6
DAFT_07 = ("daft==0.7.26",)

# Everything the suite may build, by name; built in the background once asked for.
BUILDS: dict[str, Callable[[], Any]] = {
    **{suite: (lambda suite=suite: chroot(suite)) for suite in SUITES},  # type: ignore[misc]
    "daft-0.7.26@3.13": lambda: chroot_packages("3.13", DAFT_07),
    "daft-0.6.14": lambda: host_packages(DAFT_06),
}
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(BUILDS), thread_name_prefix="hn_modulefix-tests-build")
_jobs: dict[str, concurrent.futures.Future[Any]] = {}
_jobs_lock = threading.Lock()


def start(names: Sequence[str]) -> None:
    """Start building `names` (keys of BUILDS) in the background, each once per process."""
    with _jobs_lock:
        for name in names:
            if name not in _jobs:
                _jobs[name] = _pool.submit(BUILDS[name])


def get(name: str) -> Any:
    """What the build `name` made (a chroot's path, a site-packages directory), waiting for
    it; raises Unavailable where it cannot be built."""
    start([name])
    return _jobs[name].result()
