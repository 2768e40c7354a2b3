"""Several nodes on one machine that share no files: for Ray and Dask clusters whose
worker nodes must not read the driver's files.

A scenario is one shell script that `in_namespace` runs in a new network namespace with
only loopback (`unshare -n`: Ray and Dask bind the machine's external address otherwise)
and a new PID namespace (`-p -f --mount-proc`: when the script ends, every process it
started ends with it).  In that script, `node(...)` starts a command in the background as
another node: in its own mount namespace (`unshare -m`) where directories of the driver
are hidden (an empty tmpfs over each) or replaced (a bind mount of another directory at the
same path), so at the driver's paths that node sees other files or none.  `wait_until`
polls for readiness.  For example:

    script = (node('"$PY" -m distributed.cli.dask_worker tcp://127.0.0.1:8786', "$OUT/worker.txt",
                   hide=[project], bind={project / "lib": old_checkout})
              + wait_until('grep -q "Starting established connection" "$OUT/worker.txt"', 60)
              + '"$PY" driver.py\\n')
    stdout = in_namespace(script, short_tmp, PY=str(bare_python))

The fixtures are imported by the test modules that use them:
`from _nodes import bare_python, short_tmp  # noqa: F401 (fixtures)`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import pytest

from _support import REPO, clean_env, make_venv, run

needs_namespace = pytest.mark.skipif(
    shutil.which("unshare") is None or shutil.which("ip") is None or os.geteuid() != 0,
    reason="needs root, unshare and ip for a loopback-only network and private mounts")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv's interpreter without hn_modulefix, where this environment's packages
    (daft, ray, dask) are importable: only what a test ships can bring hn_modulefix."""
    return make_venv(tmp_path_factory.mktemp("nodes") / "venv", host_packages=True)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # Ray's socket paths must stay under the 107-byte limit: pytest's tmp_path is too deep.
    path = Path(tempfile.mkdtemp(prefix="hnr", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def project_and_older_checkout(tmp: Path, scenario: str, module: str, old: str, new: str) -> tuple[Path, Path]:
    """A copy of tests/scenarios/`scenario` as the driver's project, and an older checkout of
    it with the same module names, where `module` (a path in it) has `new` in place of `old`."""
    project, older = tmp / "proj", tmp / "old"
    for path in (project, older):
        shutil.copytree(REPO / "tests" / "scenarios" / scenario, path, ignore=shutil.ignore_patterns("__pycache__"))
    changed = older / module
    source = changed.read_text()
    assert old in source, (changed, old)
    changed.write_text(source.replace(old, new))
    return project, older


def in_namespace(script: str, tmp: Path, *, timeout: float = 900, **env: str) -> str:
    """Run a shell script in a loopback-only network and PID namespace; return its stdout.

    Its cwd is `tmp`; HOME is `tmp`/home and OUT is `tmp` (both for the script to use);
    `env` is added to the caller's environment without hn_modulefix settings.  A script
    that exits non-zero fails the test, with its output.
    """
    (tmp / "home").mkdir(exist_ok=True)
    full_env = clean_env(HOME=str(tmp / "home"), OUT=str(tmp), **env)
    result = run(["unshare", "-n", "-p", "-f", "--mount-proc", "sh", "-c", "ip link set lo up\n" + script],
                 env=full_env, cwd=tmp, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return result.stdout


def node(command: str, log: str, *, hide: Iterable[Path] = (), bind: Mapping[Path, Path] = {},
         own_pids: bool = False) -> str:
    """A shell line that starts `command` in the background as another node: in its own
    mount namespace, with an empty tmpfs over each directory in `hide` and each target in
    `bind` showing its source directory; with `own_pids`, in its own PID namespace too.
    Its stdout and stderr go to the file `log` (a shell word: "$OUT/node.txt" expands).
    Its pid is in $! on the next line.

    `command` runs with `exec` in a `sh -c` of its own, so shell variables of the
    scenario must be exported (the environment of `in_namespace` is) to reach it.
    """
    mounts = ["mount -t tmpfs none %s" % shlex.quote(str(path)) for path in hide]
    mounts += ["mount --bind %s %s" % (shlex.quote(str(source)), shlex.quote(str(target)))
               for target, source in bind.items()]
    inner = " && ".join(mounts + ["exec " + command])
    pids = " -p -f --mount-proc" if own_pids else ""
    return "unshare -m%s sh -c %s > %s 2>&1 &\n" % (pids, shlex.quote(inner), log)


def wait_until(condition: str, timeout: float, what: str | None = None) -> str:
    """Shell lines that run `condition` every half second until it succeeds; after `timeout`
    seconds the script exits with status 9 and says what it waited for on stderr."""
    what = what or condition
    return ("_t=0; until %s; do\n"
            "  _t=$((_t + 1)); if [ $_t -gt %d ]; then echo %s >&2; exit 9; fi; sleep 0.5\n"
            "done\n" % (condition, int(timeout * 2), shlex.quote("timed out waiting for: " + what)))
