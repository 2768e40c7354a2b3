"""`hn_modulefix.check`: find an unimportable reference before the worker does.

A pickle names every class and function it does not carry by value as ``module`` +
qualified name (GLOBAL, STACK_GLOBAL, INST), and cloudpickle names the modules a
by-value function uses as globals (``subimport("name")``).  Daft wraps the UDF's own
cloudpickle payload inside the bytes of the expression's pickle, so byte strings are
searched for embedded pickles too.  Every module found is then imported in a fresh
interpreter started the way Daft starts its UDF worker: the same executable and
environment, ``python -m``, another working directory, none of this process's run-time
sys.path additions.

An object is pickled with the pickler its engine uses (see `_PICKLERS`): the PyPI
cloudpickle when installed, else the copy Daft, Ray or Modal vendors, so that Daft users
without cloudpickle can check too; the result says which one.

Run as ``python -m hn_modulefix._check OUT`` this module is that fresh interpreter: it
reads the modules to import from stdin and writes the outcome to OUT as JSON (stdout is
left to whatever the imported modules print).
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import pickletools
import subprocess
import sys
import tempfile
from typing import IO, Any, Callable, Union

from _hn_modulefix_boot import ENV_MANIFEST as _ENV_MANIFEST

PathLike = Union[str, "os.PathLike[str]"]
_PROBE_TIMEOUT = 600.0  # seconds; importing a stack like daft + torch can take a while
_ALTERNATIVES = "Modal: hn_modulefix.image_layer(); Ray: hn_modulefix.ray_runtime_env()"


# Name -> (module, its dumps function, what it is), in the order check() tries them when no
# pickler is named: the PyPI cloudpickle, then the copies the engines vendor (Daft and
# Modal do not depend on the PyPI one, so their users often lack it).  All of them are
# cloudpickle underneath, so they name the same modules; each is the one its engine sends.
_PICKLERS: dict[str, tuple[str, str, str]] = {
    "cloudpickle": ("cloudpickle", "dumps", "cloudpickle"),
    "daft": ("daft.pickle", "dumps", "Daft's vendored cloudpickle"),
    "ray": ("ray.cloudpickle", "dumps", "Ray's vendored cloudpickle"),
    "modal": ("modal._serialization", "serialize", "Modal's serializer, its vendored cloudpickle"),
}
PICKLERS = tuple(_PICKLERS)


class CheckError(Exception):
    """The payload cannot be read, or the fresh interpreter could not report."""


class ModuleCheck:
    """One module a worker must import: whether a fresh interpreter can, and how.

    `status` is ``"ok"`` (found by the normal import system), ``"bundle"`` (rebuilt by
    hn_modulefix's finder from the bundle) or ``"failed"``; a failure has `error` (the
    exception's first line) and `fix`.  `referenced_by` lists the qualified names the
    payload refers to in this module; the module's own name stands for the module object.
    `origin` is the file the checking process has the module from, if it imported it.
    """

    __slots__ = ("module", "status", "referenced_by", "error", "fix", "origin")

    def __init__(self, module: str, status: str, referenced_by: tuple[str, ...],
                 error: str | None = None, fix: str | None = None, origin: str | None = None) -> None:
        self.module = module
        self.status = status
        self.referenced_by = referenced_by
        self.error = error
        self.fix = fix
        self.origin = origin

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def __repr__(self) -> str:
        return "ModuleCheck(%r, %r)" % (self.module, self.status)


class CheckResult:
    """Every module a payload needs, in name order, as a fresh worker interpreter saw it."""

    __slots__ = ("modules", "manifest", "notes", "pickler")

    def __init__(self, modules: tuple[ModuleCheck, ...], manifest: str | None, notes: tuple[str, ...],
                 pickler: str | None = None) -> None:
        self.modules = modules
        self.manifest = manifest  # HN_MODULEFIX_MANIFEST as the fresh interpreter had it
        self.notes = notes  # the hn_modulefix lines it printed on stderr
        self.pickler = pickler  # the name in PICKLERS obj was pickled with; None for given bytes

    @property
    def ok(self) -> bool:
        return all(m.ok for m in self.modules)

    @property
    def failed(self) -> tuple[ModuleCheck, ...]:
        return tuple(m for m in self.modules if not m.ok)

    def __repr__(self) -> str:
        return "CheckResult(%d modules, %d failed)" % (len(self.modules), len(self.failed))

    def report(self) -> str:
        where = "HN_MODULEFIX_MANIFEST=%s" % self.manifest if self.manifest else "HN_MODULEFIX_MANIFEST unset"
        lines = []
        if self.pickler is not None:
            module, dumps, what = _PICKLERS[self.pickler]
            lines.append("pickled with %s: %s.%s (%s)" % (self.pickler, module, dumps, what))
        lines.append("%d modules to import, tried in a fresh `python -m` in another directory (%s):"
                     % (len(self.modules), where))
        width = max([len(m.module) for m in self.modules] + [0])
        for m in self.modules:
            if m.ok:
                lines.append("  %-6s  %-*s  %s" % (m.status, width, m.module, _short(m)))
            else:
                lines.append("  FAILED  %s" % m.module)
                lines.append("          %s" % m.error)
                lines.append("          referenced by: %s" % ", ".join(m.referenced_by))
                if m.origin is not None:
                    lines.append("          here from: %s" % m.origin)
        lines.extend(self.notes)
        failed = self.failed
        # Modules failing for one reason share their fix: it is said once, for all of them.
        fixes: dict[str, list[str]] = {}
        for m in failed:
            fixes.setdefault(m.fix or "", []).append(m.module)
        for fix, modules in fixes.items():
            lines.append("fix for %s: %s" % (", ".join(modules), fix))
        if failed:
            lines.append("FAILED: %d of %d modules cannot be imported by a worker: %s"
                         % (len(failed), len(self.modules), ", ".join(m.module for m in failed)))
        else:
            bundled = sum(m.status == "bundle" for m in self.modules)
            lines.append("ok: a worker can import all %d modules (%d only through the bundle)"
                         % (len(self.modules), bundled))
        return "\n".join(lines)


def _short(m: ModuleCheck, shown: int = 3) -> str:
    """The referenced names relative to their module, the first few of them."""
    names = [n[len(m.module) + 1:] or "(the module)" for n in m.referenced_by]
    more = " and %d more" % (len(names) - shown) if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


# -- reading the payload ---------------------------------------------------------------

class _Str:
    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value


class _Global:
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name


class _Tuple:
    __slots__ = ("items",)

    def __init__(self, items: list[object]) -> None:
        self.items = items


class _Malformed(Exception):
    pass


_MARK = object()
_UNKNOWN = object()  # any value whose content does not matter here
_STRINGS = frozenset({"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
                      "STRING", "BINSTRING", "SHORT_BINSTRING"})
_BYTES = frozenset({"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_TUPLES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


def _is_importer(func: object) -> bool:
    """Callables that import their first argument when the pickle is loaded."""
    if not isinstance(func, _Global):
        return False
    return ((func.name == "subimport" and "cloudpickle" in func.module)
            or (func.module, func.name) == ("importlib", "import_module"))


def _add(refs: dict[str, set[str]], proto: int, module: str, name: str) -> _Global:
    if proto < 3:
        # What pickle.Unpickler.find_class does for Python 2 era names (fix_imports).
        import _compat_pickle

        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    refs.setdefault(module, set()).add(name)
    return _Global(module, name)


def _pop(stack: list[object]) -> object:
    if not stack:
        raise _Malformed("stack underflow")
    return stack.pop()


def _pop_to_mark(stack: list[object]) -> list[object]:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise _Malformed("no mark on the stack")


def _walk(stream: IO[bytes], refs: dict[str, set[str]]) -> None:
    """Follow one pickle up to its STOP, tracking just enough of the stack and memo to
    know which strings STACK_GLOBAL and importer calls receive."""
    stack: list[object] = []
    memo: dict[int, object] = {}
    proto = 0
    arg: Any  # its type depends on the opcode
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name in _STRINGS:
            stack.append(_Str(arg))
        elif name == "GLOBAL":
            module, _, qualname = arg.partition(" ")
            stack.append(_add(refs, proto, module, qualname))
        elif name == "STACK_GLOBAL":
            qualname, module = _pop(stack), _pop(stack)
            if isinstance(module, _Str) and isinstance(qualname, _Str):
                stack.append(_add(refs, proto, module.value, qualname.value))
            else:
                stack.append(_UNKNOWN)
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else _UNKNOWN
        elif name in _PUTS:
            memo[arg] = stack[-1] if stack else _UNKNOWN
        elif name in _GETS:
            if arg not in memo:
                raise _Malformed("memo key %r was never stored" % (arg,))
            stack.append(memo[arg])
        elif name == "DUP":
            stack.append(stack[-1] if stack else _UNKNOWN)
        elif name in _TUPLES:
            count = _TUPLES[name]
            items = [_pop(stack) for _ in range(count)][::-1]
            stack.append(_Tuple(items))
        elif name == "TUPLE":
            stack.append(_Tuple(_pop_to_mark(stack)))
        elif name == "REDUCE":
            args, func = _pop(stack), _pop(stack)
            if _is_importer(func) and isinstance(args, _Tuple) and args.items and isinstance(args.items[0], _Str):
                refs.setdefault(args.items[0].value, set()).add("")
            stack.append(_UNKNOWN)
        else:
            if name == "PROTO":
                proto = arg
            elif name == "INST":
                module, _, qualname = arg.partition(" ")
                _add(refs, proto, module, qualname)
            elif name in _BYTES:
                _walk_embedded(bytes(arg), refs)
            _apply_stack_effect(op, stack)


def _apply_stack_effect(op: pickletools.OpcodeInfo, stack: list[object]) -> None:
    before = op.stack_before
    if pickletools.markobject in before:
        _pop_to_mark(stack)  # the stack slice above the mark and the mark itself
        for _ in range(before.index(pickletools.markobject)):
            _pop(stack)
    else:
        for _ in before:
            _pop(stack)
    for kind in op.stack_after:
        stack.append(_MARK if kind is pickletools.markobject else _UNKNOWN)


def _walk_embedded(data: bytes, refs: dict[str, set[str]]) -> None:
    """Pickles inside a byte string (Daft serializes a UDF's cloudpickle payload into
    the bytes its expression pickles to): every protocol 2+ header is tried, and what a
    complete parse finds is kept."""
    stream = io.BytesIO(data)
    start = data.find(b"\x80")
    while start != -1 and start + 1 < len(data):
        if 2 <= data[start + 1] <= 5:
            found: dict[str, set[str]] = {}
            stream.seek(start)
            try:
                _walk(stream, found)
            except Exception:
                # Arbitrary bytes that merely look like a pickle header fail here in
                # any number of ways; none of them means anything to the caller.
                start = data.find(b"\x80", start + 1)
                continue
            for module, names in found.items():
                refs.setdefault(module, set()).update(names)
            start = data.find(b"\x80", stream.tell())
        else:
            start = data.find(b"\x80", start + 1)


def _references(payload: bytes) -> dict[str, set[str]]:
    """Module name -> names the payload refers to in it ("" for the module object)."""
    refs: dict[str, set[str]] = {}
    try:
        _walk(io.BytesIO(payload), refs)
    except (ValueError, _Malformed) as exc:
        raise CheckError("not a pickle payload: %s" % (exc,)) from exc
    return refs


def _qualified(module: str, names: set[str]) -> tuple[str, ...]:
    return tuple(sorted(module + "." + n if n else module for n in names))


# -- the fresh interpreter -------------------------------------------------------------

def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _probe_one(module_name: str, names: list[str]) -> dict[str, Any]:
    import importlib

    if module_name == "__main__":
        return {"status": "failed", "kind": "main",
                "error": "a worker looks these up in its own __main__, not the sender's script"}
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:  # SystemExit too: a worker would die of it the same way
        if isinstance(exc, KeyboardInterrupt):
            raise
        message = str(exc).splitlines()[0] if str(exc) else ""
        error = "%s: %s" % (type(exc).__name__, message)
        own = (isinstance(exc, ImportError) and message.startswith("hn_modulefix cannot rebuild module %r"
                                                                   % module_name))
        if own:
            from hn_modulefix._manifest import SourceChanged

            # The finder chains what made a shipped file unusable: missing, changed or unreadable.
            cause = _root_cause(exc)
            if isinstance(cause, (FileNotFoundError, SourceChanged)):
                kind = "stale"
            else:
                kind = "unreadable" if isinstance(cause, OSError) else "raised"
        elif isinstance(exc, ModuleNotFoundError) and exc.name and (
                module_name == exc.name or module_name.startswith(exc.name + ".")):
            kind = "not_found"
        else:
            kind = "raised"
        return {"status": "failed", "kind": kind, "error": error}
    from hn_modulefix._finder import from_bundle

    shipped = from_bundle(getattr(module, "__spec__", None))
    file = getattr(module, "__file__", None)
    located = {"file": file if isinstance(file, str) else None,
               "path": [str(p) for p in getattr(module, "__path__", None) or ()]}
    for name in names:
        target: object = module
        try:
            for part in name.split(".") if name else ():
                target = getattr(target, part)
        except Exception as exc:
            return dict(located, status="failed", kind="shipped_attribute" if shipped else "attribute",
                        error="%s: %s (looking up %s.%s)" % (type(exc).__name__, exc, module_name, name))
    return dict(located, status="bundle" if shipped else "ok")


def _same_module(module: str, outcome: dict[str, Any]) -> str | None:
    """Why the module a worker imported is not the one this process has (None: it is):
    another file under the same name, or a namespace package where this process has a file."""
    mine = getattr(sys.modules.get(module), "__file__", None)
    if not isinstance(mine, str) or "path" not in outcome:
        return None  # not imported here (or by the worker), or nothing to compare with
    theirs = outcome.get("file")
    if theirs is None:
        return ("a worker gets a namespace package (%s) where this process has %s"
                % (", ".join(outcome.get("path") or ()) or "no directory", mine))
    if os.path.realpath(theirs) == os.path.realpath(mine):
        return None
    try:
        with open(theirs, "rb") as a, open(mine, "rb") as b:
            if a.read() == b.read():
                return None  # a copy of the same file, as a bundle ships it
    except OSError:
        pass
    return "a worker imports it from %s, this process from %s" % (theirs, mine)


def _probe_main(argv: list[str]) -> int:
    request = json.load(sys.stdin)
    results = {name: _probe_one(name, names) for name, names in request.items()}
    with open(argv[0], "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


def _run_probe(request: dict[str, list[str]], manifest: str | None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    if not sys.executable:
        raise CheckError("this interpreter does not know its own executable (sys.executable is empty)")
    env = dict(os.environ)
    if manifest is not None:
        env[_ENV_MANIFEST] = manifest
    with tempfile.TemporaryDirectory(prefix="hn_modulefix-check-") as elsewhere:
        out = os.path.join(elsewhere, "result.json")
        try:
            done = subprocess.run([sys.executable, "-m", "hn_modulefix._check", out], input=json.dumps(request),
                                  cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, timeout=_PROBE_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise CheckError("the fresh interpreter did not finish importing within %d s" % exc.timeout) from exc
        notes = list(dict.fromkeys(line for line in done.stderr.splitlines() if line.startswith("hn_modulefix:")))
        try:
            with open(out, encoding="utf-8") as f:
                return json.load(f), notes
        except (OSError, ValueError) as exc:
            last = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise CheckError("the fresh interpreter (%s -m hn_modulefix._check) exited with status %d before "
                             "reporting: %s" % (sys.executable, done.returncode, last[0])) from exc


# -- putting it together ---------------------------------------------------------------

def _fix(kind: str, module: str, manifest: str | None, listed: bool | None, manifest_problem: str | None) -> str:
    if kind == "not_found":
        if manifest is None:
            return ("ship it: bundle the script that imports it (`hn-modulefix bundle SCRIPT -o DIR`) and give "
                    "the workers HN_MODULEFIX_MANIFEST=DIR/manifest.json (%s)" % _ALTERNATIVES)
        if manifest_problem is not None:
            # Whether bundling again helps depends on what is wrong: the manifest says it.
            return "the bundle cannot be used: %s" % manifest_problem
        if not listed:
            return ("the bundle %s does not list it: bundle the script that imports it too, or add "
                    "`--include %s` if it is imported in a way the source does not show" % (manifest, module))
        return ("the bundle lists it but no finder answered in the fresh interpreter: run "
                "`hn-modulefix doctor` there (start-up hook missing or disabled?)")
    if kind == "stale":
        return "a listed file changed or is missing since bundling: re-run `hn-modulefix bundle` and ship it again"
    if kind == "unreadable":
        return "the shipped copy exists but cannot be read: make the bundle readable where the workers run"
    if kind == "shipped_attribute":
        return ("the bundle's copy lacks what the payload names (bundled from an older version?): re-run "
                "`hn-modulefix bundle` and ship it again")
    if kind == "attribute":
        # Not from the bundle: the worker has its own version, which bundling does not replace.
        return ("the worker's version of the module lacks what the payload names: install the sender's "
                "version where the workers run")
    if kind == "other":
        return ("ship this process's module: a bundle (`hn-modulefix bundle SCRIPT -o DIR`, or hn_modulefix.ship()) "
                "is answered ahead of same-named modules and directories (%s)" % _ALTERNATIVES)
    if kind == "main":
        return "move these objects into a module, or pickle them by value (cloudpickle does for __main__)"
    return "importing it raises in a fresh interpreter, so a worker fails the same way: fix that error"


def _dumps(name: str) -> Callable[[object], bytes] | None:
    """The dumps function of pickler `name`; None when its package is not installed."""
    module, function, _ = _PICKLERS[name]
    try:
        return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module + ".").startswith(exc.name + "."):  # the package itself is missing
            return None
        raise CheckError("pickler %r (%s) cannot be imported: %s" % (name, module, exc)) from exc


def _pickle(obj: object, pickler: str | None) -> tuple[bytes, str]:
    """`obj` pickled with `pickler`, or with the first installed one of PICKLERS."""
    choices = ", ".join("%s (%s)" % (name, module) for name, (module, _, _) in _PICKLERS.items())
    if pickler is not None and pickler not in _PICKLERS:
        raise CheckError("unknown pickler %r; the choices are %s" % (pickler, choices))
    for name in (pickler,) if pickler is not None else PICKLERS:
        dumps = _dumps(name)
        if dumps is not None:
            return dumps(obj), name
    if pickler is not None:
        raise CheckError("pickler %r needs %s, which is not installed; the choices are %s"
                         % (pickler, _PICKLERS[pickler][0], choices))
    raise CheckError("check(obj) needs one of the picklers an engine sends with, and none is installed: %s; "
                     "install one, or pass the pickled bytes instead" % choices)


def check(obj: object, *, manifest: PathLike | None = None, pickler: str | None = None) -> CheckResult:
    """Import every module a worker needs to unpickle `obj` in a fresh interpreter.

    `obj` is pickled with `pickler` (one of PICKLERS: "cloudpickle", "daft", "ray",
    "modal"), by default with the first of them that is installed; the result's `pickler`
    says which.  Bytes are taken as a payload already pickled (``daft.pickle.dumps(expr)``,
    say).  `manifest` sets HN_MODULEFIX_MANIFEST for the fresh interpreter; by default it
    inherits this process's environment unchanged.
    """
    from hn_modulefix._finder import _manifest_argument
    from hn_modulefix._manifest import ManifestError, load

    used = None
    if isinstance(obj, (bytes, bytearray, memoryview)):
        if pickler is not None:
            raise CheckError("pickler=%r: the payload is bytes, already pickled; pass the object instead" % pickler)
        payload = bytes(obj)
    else:
        payload, used = _pickle(obj, pickler)
    refs = _references(payload)

    listed: frozenset[str] = frozenset()
    manifest_problem = None
    active = os.environ.get(_ENV_MANIFEST) or None
    if manifest is not None:
        # A pythonpath: reference stays one: the fresh interpreter resolves it, as a worker would.
        active = _manifest_argument(manifest)
        listed = frozenset(load(active).by_name)  # one given explicitly must be usable
    elif active is not None:
        try:
            listed = frozenset(load(active).by_name)
        except ManifestError as exc:
            # Inherited from the environment, it is reported as the workers meet it.
            manifest_problem = str(exc)

    outcomes, notes = _run_probe({m: sorted(names) for m, names in sorted(refs.items())}, active)
    modules = []
    for module, names in sorted(refs.items()):
        outcome = outcomes[module]
        if outcome["status"] != "failed" or outcome["kind"] in ("attribute", "shipped_attribute"):
            # Another module under this name explains a missing attribute too, and better.
            other = _same_module(module, outcome)
            if other is not None:
                outcome = {"status": "failed", "kind": "other", "error": other}
        fix = None
        if outcome["status"] == "failed":
            fix = _fix(outcome["kind"], module, active, module in listed, manifest_problem)
        # Where the sender has a module the worker cannot find tells which script to bundle.
        origin = getattr(sys.modules.get(module), "__file__", None) if outcome.get("kind") == "not_found" else None
        modules.append(ModuleCheck(module, outcome["status"], _qualified(module, names), outcome.get("error"), fix,
                                   origin if isinstance(origin, str) else None))
    return CheckResult(tuple(modules), active, tuple(notes), used)


def _script_object(ref: str) -> object:
    """`NAME` (dotted) of the script in `SCRIPT::NAME`, the script imported as `modal run`
    imports it: its directory first on sys.path, loaded by file location as module <stem>."""
    import importlib.util

    script, _, name = ref.partition("::")
    if not name:
        raise CheckError("name the object: SCRIPT::NAME")
    path = os.path.abspath(script)
    if not os.path.isfile(path):
        raise CheckError("no such script: %s" % script)
    stem = os.path.splitext(os.path.basename(path))[0]
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(stem, path)
    assert spec is not None and spec.loader is not None  # a .py file always has one
    module = importlib.util.module_from_spec(spec)
    sys.modules[stem] = module
    spec.loader.exec_module(module)
    target: object = module
    for part in name.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise CheckError("%s has no %s" % (script, name)) from exc
    return target


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("payload", metavar="PAYLOAD_FILE|SCRIPT::NAME",
                        help="a pickle, e.g. written by daft.pickle.dumps(expr); or an object of a script, "
                             "which is imported as `modal run` imports it and pickled with --pickler")
    parser.add_argument("--manifest", metavar="PATH",
                        help="check with this bundle manifest active (default: $HN_MODULEFIX_MANIFEST as set)")
    parser.add_argument("--pickler", choices=PICKLERS,
                        help="what pickles SCRIPT::NAME (default: the first of these that is installed)")


def cli_run(args: argparse.Namespace) -> int:
    try:
        if "::" in args.payload:
            obj = _script_object(args.payload)
        elif args.pickler is not None:
            raise CheckError("--pickler applies to SCRIPT::NAME; a payload file is already pickled")
        else:
            with open(args.payload, "rb") as f:
                obj = f.read()
        result = check(obj, manifest=args.manifest, pickler=args.pickler)
    except CheckError as exc:
        print("hn-modulefix check: error: %s: %s" % (args.payload, exc), file=sys.stderr)
        return 1
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
