"""Interpreter start-up: hn_modulefix installed with a manifest active vs not installed.

Two fresh venvs of the same interpreter: A has the wheel pip-installed (so its .pth runs
at every start) and HN_MODULEFIX_MANIFEST names a real bundle; B has no hn_modulefix.
The ratio is the median of paired runs of `python -c CODE` (see _pairs.py).

    python benchmarks/startup.py [--pairs 400] [--code "import daft"] [--debian-sitecustomize]

--code times something else than `pass` (both venvs then see this environment's
packages); --debian-sitecustomize puts on PYTHONPATH, for A and B alike, a sitecustomize
like Debian's and Ubuntu's system Pythons ship, whose failing `import apport_python_hook`
reaches the finder at every start.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _pairs import bundled_script, check_hooked, instructions, interpreter, machine, paired, venvs

from tests._support import clean_env

DEBIAN_SITECUSTOMIZE = "try:\n    import apport_python_hook\nexcept ImportError:\n    pass\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--code", default="pass")
    parser.add_argument("--debian-sitecustomize", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with_pkg, without = venvs(root, host_packages=args.code != "pass")
        extra = {}
        if args.debian_sitecustomize:
            (root / "debian").mkdir()
            (root / "debian" / "sitecustomize.py").write_text(DEBIAN_SITECUSTOMIZE)
            extra["PYTHONPATH"] = str(root / "debian")
        env = clean_env(HN_MODULEFIX_MANIFEST=bundled_script(with_pkg, root), **extra)
        check_hooked(with_pkg, env)
        ratio, ta, tb = paired(interpreter(with_pkg, env, args.code), interpreter(without, env, args.code),
                               args.pairs)
        print(machine())
        print("%d pairs of `python -c %r`%s" % (args.pairs, args.code,
                                                 " with a Debian-like sitecustomize" if extra else ""))
        print("installed + manifest active: median %.2f ms" % (ta * 1e3))
        print("not installed:               median %.2f ms" % (tb * 1e3))
        print("start-up ratio (median of paired A/B): %.3f" % ratio)
        ia, ib = instructions(with_pkg, env, args.code), instructions(without, env, args.code)
        if ia and ib:
            print("instructions per start: %d vs %d, ratio %.3f (callgrind)" % (ia, ib, ia / ib))
        inactive = clean_env(**extra)
        ratio, ta, tb = paired(interpreter(with_pkg, inactive, args.code), interpreter(without, inactive, args.code),
                               args.pairs)
        print("installed, no manifest set: start-up ratio %.3f" % ratio)


if __name__ == "__main__":
    main()
