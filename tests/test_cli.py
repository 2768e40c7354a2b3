"""The `hn-modulefix` command line as a user meets it: version, help, usage errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import hn_modulefix
from _support import clean_env, run

EXE = str(Path(sys.executable).parent / "hn-modulefix")  # the console script pip installed

EXAMPLES = {
    "bundle": "hn-modulefix bundle scripts/pipeline.py -o build/bundle",
    "cache": "hn-modulefix cache --prune --older-than 2d",
    "check": "hn-modulefix check udf.pkl --manifest build/bundle/manifest.json",
    "doctor": "HN_MODULEFIX_MANIFEST=build/bundle/manifest.json hn-modulefix doctor",
    "emulate": "hn-modulefix emulate examples/modal_daft_pipeline.py::retrieve --args-from example_queries",
    "install-hook": "python -m hn_modulefix install-hook",
}
ENVIRONMENT = [
    "environment:",
    "  HN_MODULEFIX_MANIFEST       the bundle manifest listed modules are rebuilt from: a path, or",
    "                              pythonpath:DIR/manifest.json for the first sys.path entry that holds it;",
    "                              unset, the start-up hook does nothing",
    "  HN_MODULEFIX_DEBUG          1: print the traceback behind an hn_modulefix error",
    "  HN_MODULEFIX_CACHE_MAX_AGE  ship() removes cache bundles unused this long (default 7d; 12h, 30d...)",
]


def test_version(tmp_path: Path) -> None:
    result = run([EXE, "--version"], cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "hn-modulefix %s\n" % hn_modulefix.__version__, "")


def test_help_shows_an_example_per_command_and_the_environment(tmp_path: Path) -> None:
    result = run([EXE, "--help"], cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    start = lines.index("examples:")
    assert lines[start:] == ["examples:", *("  " + example for example in EXAMPLES.values()), "", *ENVIRONMENT]


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_each_command_help_shows_its_example(tmp_path: Path, command: str) -> None:
    result = run([EXE, command, "--help"], cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("usage: hn-modulefix %s " % command)
    start = lines.index("example:")
    assert lines[start:] == ["example:", "  " + EXAMPLES[command], "", *ENVIRONMENT]


def test_an_unexpected_argument_shows_the_command_usage(tmp_path: Path) -> None:
    result = run([EXE, "doctor", "extra"], cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", "usage: hn-modulefix doctor [-h]\nhn-modulefix doctor: error: unrecognized arguments: extra\n")


def test_errors_are_one_line_and_the_traceback_only_on_request(tmp_path: Path) -> None:
    result = run([EXE, "bundle", "nope.py", "-o", "out"], cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "hn-modulefix bundle: error: nope.py: does not exist\n")
    result = run([EXE, "bundle", "nope.py", "-o", "out"], cwd=tmp_path, env=clean_env(HN_MODULEFIX_DEBUG="1"))
    lines = result.stderr.splitlines()
    assert (result.returncode, result.stdout, lines[0]) == (1, "", "Traceback (most recent call last):")
    assert lines[-2:] == ["hn_modulefix._bundle.BundleError: nope.py: does not exist",
                          "hn-modulefix bundle: error: nope.py: does not exist"]
