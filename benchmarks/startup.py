"""Interpreter start-up: hn_modulefix installed with a manifest active vs not installed.

Two fresh venvs of the same interpreter: A has the wheel pip-installed (so its .pth runs at
every start; the wheel ships no PEP 829 .start file, which would make Python 3.15-3.17
import pkgutil at every start) and HN_MODULEFIX_MANIFEST names a real bundle; B has no
hn_modulefix. The ratio is the median of paired runs of `python -c pass` (see _pairs.py);
then the same with no manifest set. --cpu times the CPU the started interpreter used
instead of wall time; and, in instructions, A with a .pth holding only a comment (what
any .pth costs). Then, on this interpreter, the same for two plain (not venv)
installations, where `site` runs the .pth once: up to 3.14 a venv's runs every .pth twice.
Instructions are counted by callgrind where valgrind is installed (for --python, in
that chroot).

    python benchmarks/startup.py [--pairs 400] [--cpu]                  # this interpreter
    python benchmarks/startup.py --python 3.15 [--pairs 400] [--cpu]    # a Debian chroot's (as root)
    python benchmarks/startup.py --code "import daft" [--debian-sitecustomize]

With --python X.Y (3.9, 3.13, 3.14, 3.15) the venvs are made in the test suite's cached
chroot for that Python (tests/_pythons.py; built first if missing) and this script runs
there, so the timed starts include no chroot set-up. Debian's Pythons run their own
`sitecustomize`, which imports the absent `apport_python_hook` at every start.

--code times something else than `pass` (both venvs then see this environment's
packages); --debian-sitecustomize puts on PYTHONPATH, for A and B alike, a sitecustomize
like the one Debian's and Ubuntu's system Pythons ship, for this interpreter.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _pairs import REPO, bundled_script, check_hooked, instructions, interpreter, machine, paired, plain_pythons, venvs

from tests._support import build_wheel, clean_env


DEBIAN_SITECUSTOMIZE = "try:\n    import apport_python_hook\nexcept ImportError:\n    pass\n"


def measure(with_pkg: str, without: str, root: Path, pairs: int, code: str = "pass",
            extra: dict[str, str] | None = None, cpu: bool = False) -> None:
    extra = extra or {}
    env = clean_env(HN_MODULEFIX_MANIFEST=bundled_script(with_pkg, root), **extra)
    check_hooked(with_pkg, env)
    ratio, ta, tb = paired(interpreter(with_pkg, env, code, cpu=cpu), interpreter(without, env, code, cpu=cpu), pairs)
    print(machine())
    print("%d pairs of `python -c %r`%s, %s" % (pairs, code, " with a Debian-like sitecustomize" if extra else "",
                                                "CPU time (user + system)" if cpu else "wall time"))
    print("installed + manifest active: median %.2f ms" % (ta * 1e3))
    print("not installed:               median %.2f ms" % (tb * 1e3))
    print("start-up ratio (median of paired A/B): %.3f" % ratio)
    ia, ib = instructions(with_pkg, env, code), instructions(without, env, code)
    if ia and ib:
        print("instructions per start: %d vs %d, ratio %.3f (callgrind)" % (ia, ib, ia / ib))
    floor = pth_floor(with_pkg, without, clean_env(**extra), code)
    if floor:
        print("a .pth holding only a comment instead of the hook's, no manifest set: instructions ratio %.3f "
              "(callgrind): what any .pth costs here" % floor)
    inactive = clean_env(**extra)
    ratio, ta, tb = paired(interpreter(with_pkg, inactive, code, cpu=cpu), interpreter(without, inactive, code, cpu=cpu),
                           pairs)
    print("installed, no manifest set: start-up ratio %.3f (%.2f vs %.2f ms)" % (ratio, ta * 1e3, tb * 1e3))
    ia, ib = instructions(with_pkg, inactive, code), instructions(without, inactive, code)
    if ia and ib:
        print("installed, no manifest set: instructions per start: %d vs %d, ratio %.3f (callgrind)"
              % (ia, ib, ia / ib))
    if sys.version_info >= (3, 15):
        # What the wheel does not ship, for comparison: the PEP 829 .start entry point, whose
        # resolution makes `site` import pkgutil and re at every start.
        hook = [with_pkg, "-m", "hn_modulefix", "install-hook"]
        subprocess.run(hook + ["--start"], env=inactive, check=True, stdout=subprocess.DEVNULL)
        try:
            ratio, ta, tb = paired(interpreter(with_pkg, env, code, cpu=cpu), interpreter(without, env, code, cpu=cpu),
                                   pairs)
        finally:
            subprocess.run(hook, env=inactive, check=True, stdout=subprocess.DEVNULL)  # the .pth alone again
        print("with `install-hook --start` (.start entry point), manifest active: start-up ratio %.3f "
              "(%.2f vs %.2f ms)" % (ratio, ta * 1e3, tb * 1e3))


def pth_floor(with_pkg: str, without: str, env: dict[str, str], code: str) -> float | None:
    """The instruction ratio of A with a .pth that holds only a comment in place of the
    hook's, to B: `site` opening, reading and decoding a .pth file (3.13+ decode it as
    utf-8-sig, whose codec is a module to import), twice in a venv up to 3.14."""
    site = subprocess.run([with_pkg, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=env,
                          check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    pth = Path(site) / "hn_modulefix.pth"
    hook = pth.read_bytes()
    try:
        pth.write_text("# a .pth file that runs nothing\n")
        ia, ib = instructions(with_pkg, env, code), instructions(without, env, code)
    finally:
        pth.write_bytes(hook)
    return ia / ib if ia and ib else None


def measure_plain(root: Path, pairs: int, code: str, extra: dict[str, str], cpu: bool) -> None:
    """The same, manifest active, for two plain installations of this Python (see
    plain_pythons), where `site` runs the .pth once, not twice as in a venv up to 3.14."""
    with_pkg, without = plain_pythons(root / "plain")
    env = clean_env(HN_MODULEFIX_MANIFEST=bundled_script(with_pkg, root / "plain"), **extra)
    check_hooked(with_pkg, env)
    ratio, ta, tb = paired(interpreter(with_pkg, env, code, cpu=cpu), interpreter(without, env, code, cpu=cpu), pairs)
    print("plain installation (not a venv), hook installed by install-hook, manifest active: start-up ratio %.3f "
          "(%.2f vs %.2f ms)" % (ratio, ta * 1e3, tb * 1e3))
    ia, ib = instructions(with_pkg, env, code), instructions(without, env, code)
    if ia and ib:
        print("plain installation: instructions per start: %d vs %d, ratio %.3f (callgrind)" % (ia, ib, ia / ib))


def in_chroot(version: str, pairs: int, cpu: bool) -> int:
    """Run this script with `--venvs` inside the chroot of Python `version`."""
    sys.path.insert(0, str(REPO / "tests"))
    import _pythons

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # What this script needs, laid out as in the repository (the chroot sees it at /w).
        shutil.copytree(REPO / "benchmarks", work / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))
        (work / "tests").mkdir()
        shutil.copyfile(REPO / "tests" / "_support.py", work / "tests" / "_support.py")
        hooked = _pythons.chroot_python(version, work / "with", work, build_wheel(work / "dist"))
        bare = hooked.run(["python" + version, "-m", "venv", "--without-pip", hooked.path(work / "without")], cwd=work)
        assert bare.returncode == 0, bare.stderr
        argv = ["python" + version, hooked.path(work / "benchmarks" / "startup.py"), "--pairs", str(pairs),
                "--venvs", hooked.python, hooked.path(work / "without" / "bin" / "python")] + (["--cpu"] if cpu else [])
        return subprocess.run(_pythons.command(hooked.root, work, argv, {}, cwd=_pythons.BIND)).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--python", metavar="X.Y", help="measure the Python X.Y of the test suite's Debian chroot")
    parser.add_argument("--venvs", nargs=2, metavar="PYTHON", help=argparse.SUPPRESS)  # A and B, made by --python
    parser.add_argument("--code", default="pass", help="what each start runs (default: pass)")
    parser.add_argument("--cpu", action="store_true", help="time the CPU each start used, not wall time")
    parser.add_argument("--debian-sitecustomize", action="store_true",
                        help="a sitecustomize like Debian's on PYTHONPATH of A and B")
    args = parser.parse_args()
    if args.python:
        return in_chroot(args.python, args.pairs, args.cpu)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with_pkg, without = args.venvs or venvs(root, host_packages=args.code != "pass")
        extra = {}
        if args.debian_sitecustomize:
            (root / "debian").mkdir()
            (root / "debian" / "sitecustomize.py").write_text(DEBIAN_SITECUSTOMIZE)
            extra["PYTHONPATH"] = str(root / "debian")
        measure(with_pkg, without, root, args.pairs, args.code, extra, args.cpu)
        if not args.venvs and args.code == "pass":
            measure_plain(root, args.pairs, args.code, extra, args.cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
