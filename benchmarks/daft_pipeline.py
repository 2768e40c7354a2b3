"""A Daft process-UDF pipeline whose classes come from a bundled module vs the same script
run as `__main__`: wall time, and the size of the pickled UDF each worker receives.

The pipeline is examples/scripts/pipeline.py (a stateful process UDF whose state holds
the script's and its helper module's classes).

A: imported the way `modal run` imports it (its directory put on sys.path at run time,
   module `pipeline`, the working directory elsewhere) in a venv with the wheel and the
   bundle's manifest active; the UDF worker rebuilds `pipeline` and `helpers` from the
   bundle, and the UDF is pickled by reference.
B: `python pipeline.py` from its directory in a venv without hn_modulefix; the worker
   gets the script's classes pickled by value.

The wall ratio is the median of paired runs.  The payload is what Daft's UdfHandle sends
each worker: `daft.pickle.dumps` of the UDF's ExpressionsProjection, recorded by
wrapping that function in one extra run of each side.

    python benchmarks/daft_pipeline.py [--pairs 15]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

from _pairs import REPO, bundle, check_hooked, command, machine, paired, venvs

from examples.daft_local import IMPORT_LIKE_MODAL, SCRIPTS
from tests._support import clean_env

# Prepended to a run: report the size of every UDF payload pickled for a worker.
RECORD_PAYLOADS = """import atexit, sys
import daft.pickle
from daft.expressions import ExpressionsProjection

_dumps, _sizes = daft.pickle.dumps, []


def _recording_dumps(obj, *args, **kwargs):
    data = _dumps(obj, *args, **kwargs)
    if isinstance(obj, ExpressionsProjection):
        _sizes.append(len(data))
    return data


daft.pickle.dumps = _recording_dumps
atexit.register(lambda: sys.stderr.write("UDF payloads: %s\\n" % _sizes))
"""
AS_MAIN = "import runpy\nrunpy.run_path('pipeline.py', run_name='__main__')\n"


def outcome(argv: list[str], env: dict[str, str], cwd: str) -> tuple[object, list[int]]:
    """The pipeline's result and the UDF payload sizes of one run."""
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (argv[:2], done.stderr[-3000:]))
    sizes = re.findall(r"^UDF payloads: (\[.*\])$", done.stderr, re.M)
    return json.loads(done.stdout), json.loads(sizes[-1]) if sizes else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with_pkg, without = venvs(root, host_packages=True)
        manifest = bundle(with_pkg, Path(SCRIPTS) / "pipeline.py", root / "bundle")
        elsewhere = root / "elsewhere"
        elsewhere.mkdir()
        env = clean_env(HN_MODULEFIX_MANIFEST=manifest)
        check_hooked(with_pkg, env)
        plain = clean_env()

        imported, by_reference = outcome([with_pkg, "-c", RECORD_PAYLOADS + IMPORT_LIKE_MODAL], env, str(elsewhere))
        as_main, by_value = outcome([without, "-c", RECORD_PAYLOADS + AS_MAIN], plain, SCRIPTS)
        if imported != as_main:
            raise SystemExit("the two runs disagree: %r vs %r" % (imported, as_main))

        ratio, ta, tb = paired(command([with_pkg, "-c", IMPORT_LIKE_MODAL], env, str(elsewhere)),
                               command([without, "pipeline.py"], plain, SCRIPTS), args.pairs, warmup=2)
        print(machine())
        print("%s, %d pairs" % (Path(SCRIPTS, "pipeline.py").relative_to(REPO), args.pairs))
        print("  imported, bundle + hook (A): median %.3f s" % ta)
        print("  run as __main__ (B):         median %.3f s" % tb)
        print("  wall ratio (median of paired A/B): %.3f" % ratio)
        print("UDF payload per worker: %s bytes by reference (A), %s bytes by value (B)"
              % (", ".join(map(str, by_reference)), ", ".join(map(str, by_value))))


if __name__ == "__main__":
    main()
