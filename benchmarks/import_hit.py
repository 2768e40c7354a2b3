"""Importing a module through the finder vs the same file through sys.path, bytecode warm.

The module is a typical small script (a dataclass, an enum, a few functions).  Through
the finder the import asks the rest of sys.meta_path where the name would load from (a
miss on all of sys.path here), then reads the driver's file, checks its sha256 and loads
the hash-checked cached bytecode; through sys.path it is found at sys.path[0] and its
cached bytecode loaded.

1. In this process: import, delete from sys.modules (and the finder's memory of the
   module), import again, in batches; the hook where it installs itself (ahead of the
   path finder) vs the file's directory at sys.path[0] (median of paired batches).
2. Fresh interpreters, `python -c "import job"`: a venv with the wheel and a manifest
   active vs a venv without hn_modulefix and PYTHONPATH at the file's directory; bare,
   and after `import json` (loaded in most real programs; the finder does not need it).

    python benchmarks/import_hit.py [--pairs 200] [--fresh-pairs 200]
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

from _pairs import REPO, Timer, bundled_script, check_hooked, import_arguments, interpreter, machine, paired, venvs

from tests._support import clean_env

NAME = "hn_modulefix_benchmark_job"
SOURCE = '''"""A typical small script module."""

import dataclasses
import enum


class Kind(enum.Enum):
    SQUARE = "square"
    CUBE = "cube"


@dataclasses.dataclass(frozen=True)
class Job:
    kind: Kind
    value: int


def work(job: Job) -> int:
    return job.value ** (2 if job.kind is Kind.SQUARE else 3)


JOBS = [Job(Kind.SQUARE, 3), Job(Kind.CUBE, 2)]
'''
BATCH = 200


def imports(place: str, boot: object, directory: str) -> Timer:
    """Batches of imports with the hook "on" sys.meta_path where it installs itself, or
    "off" it with the file's directory at sys.path[0]."""
    def once() -> float:
        sys.meta_path[:] = [f for f in sys.meta_path if f is not boot]
        if directory in sys.path:
            sys.path.remove(directory)
        if place == "on":
            boot.insert(boot)  # type: ignore[attr-defined]
        else:
            sys.path.insert(0, directory)
        elapsed = 0.0
        # Each import leaves cyclic garbage (classes); collecting it at random points
        # inside the timed region would be most of the noise.
        gc.collect()
        gc.disable()
        try:
            for _ in range(BATCH):
                sys.modules.pop(NAME, None)
                # The finder keeps each file's module for its other names; forget it, so
                # that every import executes the file as the first import in a process does.
                boot._real._built.clear()  # type: ignore[attr-defined]
                start = time.perf_counter()
                module = importlib.import_module(NAME)
                elapsed += time.perf_counter() - start
        finally:
            gc.enable()
        loader = type(module.__loader__).__name__
        if loader != ("SourceFileLoader" if place == "off" else "ShippedLoader"):
            raise SystemExit("imported by %s, not the path under test" % loader)
        return elapsed
    return once


def in_process(manifest: str, directory: str, pairs: int) -> dict[str, tuple[float, float, float]]:
    if "_hn_modulefix_boot" in sys.modules:
        raise SystemExit("run this without HN_MODULEFIX_MANIFEST set: the hook is active here already")
    sys.dont_write_bytecode = False  # warm: the first import writes the .pyc both sides then read
    os.environ["HN_MODULEFIX_MANIFEST"] = manifest
    sys.path.insert(0, str(REPO / "src"))
    import _hn_modulefix_boot as boot

    boot.start()  # as the .pth does
    importlib.import_module(NAME)  # the first lookup: loads the real finder and the manifest
    if not Path(sys.modules[NAME].__cached__).is_file():
        raise SystemExit("no bytecode cache was written")
    return {"on": paired(imports("on", boot, directory), imports("off", boot, directory), pairs)}


def main() -> None:
    args = import_arguments(__doc__, BATCH)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with_pkg, without = venvs(root)
        manifest = bundled_script(with_pkg, root, NAME, SOURCE)
        directory = str(root / "proj")  # the driver's file: the one the finder executes here
        if not os.path.isfile(os.path.join(directory, NAME + ".py")):
            raise SystemExit("unexpected project layout under %s" % directory)

        print(machine())
        results = in_process(manifest, directory, args.pairs)
        print("in process, %d pairs of %d imports, bytecode warm (sys.path: %d entries)"
              % (args.pairs, BATCH, len(sys.path)))
        for place, label in (("on", "installed ahead of the path finder"),):
            ratio, ta, tb = results[place]
            print("  through the finder, %s: median %.1f us vs %.1f us through sys.path[0]; ratio %.3f"
                  % (label, ta / BATCH * 1e6, tb / BATCH * 1e6, ratio))

        # Bytecode warm here too: the runs may write .pyc files, the warm-up runs do.
        env = clean_env(HN_MODULEFIX_MANIFEST=manifest)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        check_hooked(with_pkg, env)
        plain = clean_env(PYTHONPATH=directory)
        plain.pop("PYTHONDONTWRITEBYTECODE", None)
        for label, code in (("`import job`", "import %s\n" % NAME),
                            ("`import json`, then `import job`", "import json\nimport %s\n" % NAME)):
            ratio, ta, tb = paired(interpreter(with_pkg, env, code, cwd=tmp),
                                   interpreter(without, plain, code, cwd=tmp), args.fresh_pairs)
            print("fresh interpreters, %d pairs of %s" % (args.fresh_pairs, label))
            print("  installed + manifest active: median %.2f ms" % (ta * 1e3))
            print("  not installed, PYTHONPATH:   median %.2f ms" % (tb * 1e3))
            print("  ratio %.3f (difference %.2f ms)" % (ratio, (ta - tb) * 1e3))


if __name__ == "__main__":
    main()
