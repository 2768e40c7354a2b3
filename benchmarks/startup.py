"""Interpreter start-up: hn_modulefix installed with a manifest active vs not installed.

Two fresh venvs of the same interpreter: A has the wheel pip-installed (so its .pth runs
at every start) and HN_MODULEFIX_MANIFEST names a real bundle; B has no hn_modulefix.
The ratio is the median of paired runs of `python -c pass` (see _pairs.py).

    python benchmarks/startup.py [--pairs 400]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _pairs import bundled_script, check_hooked, instructions, interpreter, machine, paired, venvs

from tests._support import clean_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with_pkg, without = venvs(root)
        env = clean_env(HN_MODULEFIX_MANIFEST=bundled_script(with_pkg, root))
        check_hooked(with_pkg, env)
        ratio, ta, tb = paired(interpreter(with_pkg, env), interpreter(without, env), args.pairs)
        print(machine())
        print("%d pairs of `python -c pass`" % args.pairs)
        print("installed + manifest active: median %.2f ms" % (ta * 1e3))
        print("not installed:               median %.2f ms" % (tb * 1e3))
        print("start-up ratio (median of paired A/B): %.3f" % ratio)
        ia, ib = instructions(with_pkg, env), instructions(without, env)
        if ia and ib:
            print("instructions per start: %d vs %d, ratio %.3f (callgrind)" % (ia, ib, ia / ib))
        inactive = clean_env()
        ratio, ta, tb = paired(interpreter(with_pkg, inactive), interpreter(without, inactive), args.pairs)
        print("installed, no manifest set: start-up ratio %.3f" % ratio)


if __name__ == "__main__":
    main()
