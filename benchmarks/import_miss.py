"""A failing import of an unknown name: the start-up hook's finder on sys.meta_path vs not.

Every failing import asks the finder (ahead of the path finder) first, so this is the
cost hn_modulefix adds to the `try: import x / except ImportError` that libraries do at
import time: one set lookup of an unlisted name.

1. In this process, after the first lookup read names.txt: batches of failing imports
   with the hook on sys.meta_path vs off it (median of paired batches).
2. The one-time cost of that first lookup (reading names.txt; never the manifest or
   `json` for an unlisted name), in fresh interpreters: `python -c "<one failing
   import>"` in a venv with the wheel and a manifest active vs a venv without
   hn_modulefix; then the same after `import json`.

    python benchmarks/import_miss.py [--pairs 200] [--fresh-pairs 200]
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

from _pairs import REPO, Timer, bundled_script, check_hooked, import_arguments, interpreter, machine, paired, venvs

from tests._support import clean_env

MISSING = "hn_modulefix_benchmark_no_such_module"
ONE_MISS = "try:\n    import %s\nexcept ImportError:\n    pass\n" % MISSING
BATCH = 1000


def misses(hooked: bool, boot: object) -> Timer:
    def once() -> float:
        if hooked and boot not in sys.meta_path:
            boot.insert(boot)  # type: ignore[attr-defined]
        elif not hooked and boot in sys.meta_path:
            sys.meta_path.remove(boot)  # type: ignore[arg-type]
        start = time.perf_counter()
        for _ in range(BATCH):
            try:
                importlib.import_module(MISSING)
            except ImportError:
                pass
        return time.perf_counter() - start
    return once


def in_process(manifest: str, pairs: int) -> tuple[float, float, float]:
    if "_hn_modulefix_boot" in sys.modules:
        raise SystemExit("run this without HN_MODULEFIX_MANIFEST set: the hook is active here already")
    os.environ["HN_MODULEFIX_MANIFEST"] = manifest
    sys.path.insert(0, str(REPO / "src"))
    import _hn_modulefix_boot as boot

    boot.start()  # as the .pth does

    importlib.util.find_spec(MISSING)  # the first lookup: reads names.txt
    if not boot._names or boot._real is not None:
        raise SystemExit("the first lookup did not read names.txt alone for %s" % manifest)
    return paired(misses(True, boot), misses(False, boot), pairs)


def main() -> None:
    args = import_arguments(__doc__, BATCH)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with_pkg, without = venvs(root)
        manifest = bundled_script(with_pkg, root)
        env = clean_env(HN_MODULEFIX_MANIFEST=manifest)
        check_hooked(with_pkg, env)

        print(machine())
        ratio, ta, tb = in_process(manifest, args.pairs)
        print("in process, %d pairs of %d failing imports (sys.path: %d entries)" % (args.pairs, BATCH, len(sys.path)))
        print("  finder on sys.meta_path:  median %.2f us per import" % (ta / BATCH * 1e6))
        print("  no finder:                median %.2f us per import" % (tb / BATCH * 1e6))
        print("  import-miss ratio (median of paired A/B): %.3f" % ratio)

        for label, code in (("one failing import", ONE_MISS), ("`import json`, then one failing import",
                                                                 "import json\n" + ONE_MISS)):
            ratio, ta, tb = paired(interpreter(with_pkg, env, code), interpreter(without, env, code), args.fresh_pairs)
            print("fresh interpreters, %d pairs of %s" % (args.fresh_pairs, label))
            print("  installed + manifest active: median %.2f ms" % (ta * 1e3))
            print("  not installed:               median %.2f ms" % (tb * 1e3))
            print("  first-miss ratio: %.3f (one-time cost %.2f ms)" % (ratio, (ta - tb) * 1e3))


if __name__ == "__main__":
    main()
