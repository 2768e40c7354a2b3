"""The failure and the fix side by side, with real Daft process UDFs and no Modal account.

examples/scripts/pipeline.py is imported the way `modal run scripts/pipeline.py` imports
it: its directory inserted into sys.path at run time, module name `pipeline`, the
working directory elsewhere.  Daft's UDF worker (`python -m daft.execution.udf_worker`)
gets the environment but not that sys.path change, so it cannot import `pipeline`:

    1. imported, no hn_modulefix        -> ModuleNotFoundError in the UDF worker
    2. imported, bundle + manifest set  -> works
    3. run as a plain script            -> works; its result must equal run 2's

    python examples/daft_local.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")

# What a platform does: put the script's directory on sys.path and import it by name.
IMPORT_LIKE_MODAL = (
    "import importlib, json, sys\n"
    "sys.path.insert(0, %r)\n"
    "print(json.dumps(importlib.import_module('pipeline').run(), sort_keys=True))\n" % SCRIPTS
)


def _env(manifest: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HN_MODULEFIX_")}
    env.pop("PYTHONPATH", None)
    if manifest:
        env["HN_MODULEFIX_MANIFEST"] = manifest
    return env


def run_imported(cwd: str, manifest: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", IMPORT_LIKE_MODAL], cwd=cwd, env=_env(manifest),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)


def run_as_main() -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "pipeline.py"], cwd=SCRIPTS, env=_env(None),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)


def make_bundle(out: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hn_modulefix", "bundle", os.path.join(SCRIPTS, "pipeline.py"),
                           "--root", os.path.dirname(SCRIPTS), "-o", out],
                          env=_env(None), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    return done.stdout.splitlines()[-1]


def first_error_line(stderr: str) -> str:
    """The import error, wherever Daft's wrapping (a Rust panic inside a RuntimeError) put it."""
    match = re.search(r"(ModuleNotFoundError|ImportError): [^\"\n]*", stderr)
    if match:
        return match.group(0).replace("\\'", "'")  # Daft nests the message in a Rust repr
    return stderr.strip().splitlines()[-1][:200] if stderr.strip() else "(no stderr)"


def missing_local_module(stderr: str) -> bool:
    """Whether the worker died because it could not import the script or its helper."""
    return re.search(r"No module named \\?'(pipeline|helpers)\\?'", stderr) is not None


def main() -> int:
    with tempfile.TemporaryDirectory() as elsewhere:
        print("1. imported as module 'pipeline', without hn_modulefix")
        red = run_imported(elsewhere, None)
        print("   exit %d: %s" % (red.returncode, first_error_line(red.stderr)))

        manifest = make_bundle(os.path.join(elsewhere, "bundle"))
        print("2. imported the same way, HN_MODULEFIX_MANIFEST=%s" % manifest)
        green = run_imported(elsewhere, manifest)
        print("   exit %d: %s" % (green.returncode, green.stdout.strip() or first_error_line(green.stderr)))

        print("3. run as a plain script (__main__) from its own directory")
        main_run = run_as_main()
        print("   exit %d: %s" % (main_run.returncode, main_run.stdout.strip() or first_error_line(main_run.stderr)))

    ok = (red.returncode != 0 and missing_local_module(red.stderr) and green.returncode == 0
          and main_run.returncode == 0 and json.loads(green.stdout) == json.loads(main_run.stdout))
    print("as expected: run 1 fails, runs 2 and 3 agree" if ok else "UNEXPECTED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
