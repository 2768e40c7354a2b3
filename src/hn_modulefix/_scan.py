"""Reading the imports of many source files, on every core.

`scan` finds the imports in one file's source.  Parsing is most of the cost of bundling
a large project (a 2,500-file closure is about 3 s of `ast.parse` on one core), so a
`Pool` shares the files of each wave of the bundler's search between this process and
helper processes: this module run as a script by the same interpreter (`-I -S`: no
site, no hooks, nothing of the user's), one file path in, its imports out.  Whatever a
helper cannot do (a syntax error, an unreadable file, a helper that did not start or
died) is done again in this process, where the error is raised as without helpers.
Stdlib only, and nothing of hn_modulefix: a helper imports nothing else.
"""

from __future__ import annotations

import ast
import bisect
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Deque, Dict, List, Optional, Sequence, Tuple

    # An import as the bundler sees it: (level, module, from-names); from-names is None
    # for `import module` and for `importlib.import_module("module")`/`__import__("module")`.
    Import = Tuple[int, str, Optional[Tuple[str, ...]]]

# Fields of compound statements that hold statements (or handlers and cases, which do).
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")
_IMPORTERS = ("import_module", "__import__")
# Per node type: its fields that are _BLOCKS, and the others.
_fields: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def scan(data: bytes, path: str) -> list[Import]:
    """The imports in a file's source: statements at any depth (inside functions,
    classes, conditionals, try blocks) and calls of `import_module` or `__import__` with
    a literal module name.  Raises SyntaxError as `ast.parse` does."""
    tree = ast.parse(data, filename=path)
    # Import statements sit in statement lists only, and a call of an importer by name
    # on a line whose text names it: walking the statements, and the expressions of
    # those lines only, rather than every node of the tree, keeps a large closure fast.
    lines = _importer_lines(data)
    calls = lines is None or bool(lines)
    found: list[Import] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Import:
            found.extend((0, alias.name, None) for alias in node.names)  # type: ignore[attr-defined]
            continue
        if kind is ast.ImportFrom:
            found.append((node.level or 0, node.module or "",  # type: ignore[attr-defined]
                          tuple(alias.name for alias in node.names)))  # type: ignore[attr-defined]
            continue
        fields = _fields.get(kind)
        if fields is None:
            fields = _fields[kind] = (tuple(f for f in kind._fields if f in _BLOCKS),
                                      tuple(f for f in kind._fields if f not in _BLOCKS))
        blocks, others = fields
        for field in blocks:
            stack.extend(getattr(node, field))
        if calls and _spans(node, lines):
            for field in others:
                value = getattr(node, field)
                for part in value if isinstance(value, list) else (value,):
                    if isinstance(part, ast.AST):
                        found.extend(_importer_calls(part))
    return found


def _importer_lines(data: bytes) -> list[int] | None:
    """The sorted numbers of the lines whose text names an importer (None: any line may,
    where a non-ASCII identifier spells one: identifiers are NFKC-normalized)."""
    if not data.isascii():
        import unicodedata
        from importlib.util import decode_source

        text = unicodedata.normalize("NFKC", decode_source(data))
        if any(text.count(called) != data.count(called.encode()) for called in _IMPORTERS):
            return None
    if b"\r" in data:  # the parser counts "\r\n", "\r" and "\n" as one line end each
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = set()
    for called in _IMPORTERS:
        word = called.encode()
        at = data.find(word)
        while at >= 0:
            lines.add(data.count(b"\n", 0, at) + 1)
            at = data.find(word, at + len(word))
    return sorted(lines)


def _spans(node: ast.AST, lines: list[int] | None) -> bool:
    """Whether `node` (a statement, handler or case), decorators included, spans one of
    `lines` (None: all lines)."""
    first = getattr(node, "lineno", None)
    if lines is None or first is None:  # a match case has no position
        return True
    decorators = getattr(node, "decorator_list", None)
    if decorators:
        first = min(first, decorators[0].lineno)
    at = bisect.bisect_left(lines, first)
    return at < len(lines) and lines[at] <= (getattr(node, "end_lineno", None) or first)


def _importer_calls(node: ast.AST) -> list[Import]:
    """`import_module("name")` and `__import__("name")` calls in an expression tree."""
    found: list[Import] = []
    for call in ast.walk(node):
        if isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant):
            func = call.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            literal = call.args[0].value
            if called in _IMPORTERS and isinstance(literal, str):
                found.append((0, literal, None))
    return found


def scan_file(path: str) -> list[Import] | None:
    """`scan` of a file, or None where that raises: the caller does it again to report."""
    try:
        with open(path, "rb") as f:
            return scan(f.read(), path)
    except Exception:
        return None


# --- helpers: one frame is a 4-byte big-endian length and a marshal payload -----------

# Below this many files a wave is scanned here: a helper takes about 20 ms to start.
PARALLEL_FROM = 16
_IN_FLIGHT = 4  # requests a helper holds, so that it never waits for this process
_START_TIMEOUT = 3.0  # seconds: a helper that has not answered by then is stopped


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _read_frame(stream: IO[bytes]) -> Any:
    import marshal

    head = stream.read(4)
    if len(head) < 4:
        raise EOFError("helper closed its output")
    size = int.from_bytes(head, "big")
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("helper closed its output")
    return marshal.loads(payload)


def _write_frame(stream: IO[bytes], value: Any) -> None:
    import marshal

    payload = marshal.dumps(value)
    stream.write(len(payload).to_bytes(4, "big") + payload)
    stream.flush()


class _Helper:
    """One helper process and the thread in this process that feeds it."""

    def __init__(self) -> None:
        import subprocess

        self.process = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
        self.started = time.monotonic()
        self.ready: bool | None = None  # None: no answer yet to the version check

    def run(self, work: "Deque[str]", results: Dict[str, Optional[List[Import]]]) -> None:
        """Scan files taken from `work` until it is empty; on any failure stop, leaving
        the files it held without a result (this process scans them)."""
        from collections import deque

        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None  # both are pipes
        held: Deque[str] = deque()
        try:
            if self.ready is None:
                # Marshal data and the grammar are the interpreter's own: same version only.
                self.ready = _read_frame(stdout) == sys.hexversion
            while self.ready:
                while len(held) < _IN_FLIGHT:
                    try:
                        path = work.popleft()
                    except IndexError:
                        break
                    held.append(path)
                    _write_frame(stdin, path)
                if not held:
                    return
                results[held.popleft()] = _read_frame(stdout)
        except Exception:
            self.ready = False

    def close(self) -> None:
        import subprocess

        try:
            self.process.stdin.close()  # type: ignore[union-attr]  # a pipe
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()  # type: ignore[union-attr]


class Pool:
    """Scans waves of files here and, for large waves, in helper processes too; a
    context manager that stops its helpers."""

    def __init__(self) -> None:
        self._helpers: list[_Helper] | None = None  # started on the first large wave

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        for helper in self._helpers or ():
            helper.close()

    def _start(self) -> list[_Helper]:
        if self._helpers is None:
            self._helpers = []
            # A frozen application's executable is the application, not Python.
            if sys.executable and not getattr(sys, "frozen", False) and os.path.isfile(__file__):
                try:
                    for _ in range(min(_cores() - 1, 3)):
                        self._helpers.append(_Helper())
                except OSError:
                    pass
        return [helper for helper in self._helpers if helper.ready is not False]

    def scan(self, paths: Sequence[str]) -> Dict[str, Optional[List[Import]]]:
        """`scan_file` of each of `paths`; a path may be missing from the result when a
        helper failed (scan it again here)."""
        import threading
        from collections import deque

        results: Dict[str, Optional[List[Import]]] = {}
        work = deque(paths)
        running = []
        if len(paths) >= PARALLEL_FROM:
            for helper in self._start():
                thread = threading.Thread(target=helper.run, args=(work, results), daemon=True)
                thread.start()
                running.append((helper, thread))
        while True:
            try:
                path = work.popleft()
            except IndexError:
                break
            results[path] = scan_file(path)
        for helper, thread in running:
            # Whatever sys.executable runs (an embedding application, say) may never
            # answer: stop it rather than wait, and scan here what it would have.
            if helper.ready is None:
                thread.join(max(0.0, helper.started + _START_TIMEOUT - time.monotonic()))
                if helper.ready is None:
                    helper.ready = False
                    helper.process.kill()
            thread.join()
        return results


def _serve() -> None:
    """A helper's loop: a path in, `scan_file` of it out, until the input ends."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _write_frame(stdout, sys.hexversion)
    while True:
        try:
            path = _read_frame(stdin)
        except EOFError:
            return
        _write_frame(stdout, scan_file(path) if isinstance(path, str) else None)


if __name__ == "__main__":
    _serve()
