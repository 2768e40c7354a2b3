"""A generated project of any size for the scale benchmark: deterministic, realistic.

`generate(root, files)` writes about `files` Python files (about 13 kB each, as in
large real packages) under `root`, which holds a pyproject.toml:

- `job.py`, the driver script: it imports the package `acme` and three of its modules;
- `acme/`, a tree of regular packages (four subpackages each, up to five levels deep)
  with a dozen modules per package.  Each module has a docstring (some quoting import
  statements), stdlib imports, third-party imports that are not local (guarded, or
  inside functions, or under TYPE_CHECKING), absolute and relative local imports (up to
  three levels up, `import a.b as c`, multi-line parenthesised from-imports), imports
  inside functions and `importlib.import_module("literal")`; then classes and functions
  with docstrings and ordinary bodies.  Package `__init__.py` files export names lazily
  through `__getattr__` and `importlib.import_module`, as many libraries do;
- `tools/`, a directory of scripts nothing imports (about 7 % of the files): a project
  holds more than the closure of one script.

Every module imports at its top level only modules generated before it, so the package
is importable (no import cycle); LEAF names a module whose import runs nothing local
but its packages' `__init__.py`.  The same `files` gives the same bytes on every run.
"""

from __future__ import annotations

import random
from pathlib import Path

PACKAGE = "acme"
SCRIPT = "job.py"
MODULES_PER_PACKAGE = 12
BRANCHING = 4
STDLIB = ("os", "sys", "re", "json", "time", "enum", "typing", "logging", "functools", "itertools",
          "collections", "dataclasses", "pathlib", "threading", "subprocess", "contextlib", "abc",
          "asyncio", "math", "hashlib", "copy", "inspect", "weakref", "textwrap", "uuid", "datetime",
          "collections.abc", "concurrent.futures", "urllib.parse", "os.path")
THIRD_PARTY = ("numpy", "pandas", "pyarrow", "requests", "yaml", "grpc", "pydantic", "aiohttp",
               "msgpack", "psutil", "opentelemetry.trace", "google.protobuf.message")
# The module generated first: it imports no other local module (see generate).
LEAF = PACKAGE + ".actor_0"
WORDS = ("actor", "batch", "cluster", "config", "dataset", "event", "frame", "gauge", "handle",
         "index", "job", "kernel", "lease", "metric", "node", "object", "placement", "queue",
         "resource", "schedule", "task", "usage", "value", "worker", "zone")


class _Module:
    def __init__(self, index: int, package: str, stem: str) -> None:
        self.index = index
        self.package = package  # dotted name of the enclosing package
        self.stem = stem
        self.name = package + "." + stem
        self.cls = "%s%d" % (stem.title().replace("_", ""), index)


def _packages(count: int) -> list[str]:
    """`count` dotted package names, breadth first: acme, acme.actor, acme.batch, ..."""
    names = [PACKAGE]
    i = 0
    while len(names) < count:
        parent = names[i]
        depth = parent.count(".")
        for k in range(BRANCHING):
            if len(names) >= count or depth >= 4:
                break
            names.append("%s.%s_%d" % (parent, WORDS[(i * BRANCHING + k) % len(WORDS)], len(names)))
        i += 1
    return names


def _relative(source: _Module, target: _Module) -> tuple[int, str] | None:
    """(level, rest) for a relative import of `target` from `source`, if it is within
    three packages up."""
    here = source.package.split(".")
    there = target.package.split(".")
    for up in range(0, min(3, len(here))):
        base = here[: len(here) - up]
        if there[: len(base)] == base:
            rest = there[len(base):] + [target.stem]
            return up + 1, ".".join(rest)
    return None


def _docstring(rng: random.Random, subject: str, indent: str, lines: int) -> str:
    text = ["%s\"\"\"%s %s." % (indent, subject.capitalize(), " ".join(rng.choice(WORDS) for _ in range(6))), ""]
    for _ in range(lines):
        text.append(indent + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))) + ".")
    if lines > 2:
        # Google-style sections, as large projects write them.
        text += ["", indent + "Args:"]
        for _ in range(rng.randint(2, 5)):
            text.append(indent + "    %s: the %s." % (rng.choice(WORDS), " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16)))))
        text += ["", indent + "Returns:", indent + "    " + " ".join(rng.choice(WORDS) for _ in range(12)) + "."]
    if rng.random() < 0.3:
        # Import statements quoted in a docstring import nothing.
        text += ["", indent + "Example::", "", indent + "    import %s.not_a_module" % PACKAGE,
                 indent + "    from nowhere import thing"]
    return "\n".join(text) + "\n" + indent + "\"\"\"\n"


def _function(rng: random.Random, name: str, indent: str, lazy: list[str]) -> str:
    body = [indent + "def %s(self, %s, *, %s=None, timeout: float = 30.0):\n"
            % (name, rng.choice(WORDS), rng.choice(WORDS) + "_id")]
    body.append(_docstring(rng, "compute the " + rng.choice(WORDS), indent + "    ", rng.randint(1, 6)))
    inner = indent + "    "
    if lazy:
        body.append(inner + lazy.pop() + "\n")
    body.append(inner + "result = {}\n")
    for _ in range(rng.randint(3, 8)):
        word, other = rng.choice(WORDS), rng.choice(WORDS)
        if rng.random() < 0.4:
            body.append(inner + "# %s: %s.\n" % (word.upper(), " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16)))))
        kind = rng.randrange(5)
        if kind == 0:
            body.append(inner + "for %s in self._%s.values():\n" % (word, other)
                        + inner + "    if %s is not None and %s.ready():\n" % (word, word)
                        + inner + "        result[%s.id] = %s.value * %d\n" % (word, word, rng.randint(2, 9)))
        elif kind == 1:
            body.append(inner + "%s = [x for x in self._%s if x.%s > timeout]\n" % (word, other, word))
        elif kind == 2:
            body.append(inner + "try:\n" + inner + "    result[%r] = self._%s.get(%r, %d)\n" % (word, other, word, rng.randint(0, 99))
                        + inner + "except KeyError as exc:\n"
                        + inner + "    raise ValueError(f\"no %s {exc}: {self!r}\") from exc\n" % word)
        elif kind == 3:
            body.append(inner + "with self._lock:\n" + inner + "    self._%s = dict(self._%s, %s=%d)\n"
                        % (word, other, word, rng.randint(0, 999)))
        else:
            body.append(inner + "logger.debug(\"%s %%s %%s\", %r, timeout)\n" % (other, word))
    body.append(inner + "return result\n\n")
    return "".join(body)


def _module_source(rng: random.Random, module: _Module, earlier: list[_Module]) -> str:
    out = [_docstring(rng, "the %s module" % module.stem, "", rng.randint(3, 12)), "\n",
           "from __future__ import annotations\n\n"]
    for name in sorted(set(rng.sample(STDLIB, rng.randint(3, 8))) | {"logging", "threading"}):
        out.append("import %s\n" % name)
    out.append("from typing import TYPE_CHECKING, Any, Optional\n\n")
    guarded = rng.choice(THIRD_PARTY)
    out.append("try:\n    import %s\nexcept ImportError:  # optional\n    %s = None\n\n"
               % (guarded, guarded.split(".")[0]))
    candidates = [m for m in earlier if m.package == module.package or module.package.startswith(m.package + ".")]
    candidates = candidates[-40:] or earlier[-40:]
    far = earlier[:: max(1, len(earlier) // 40)]
    for target in rng.sample(candidates, min(len(candidates), rng.randint(1, 4))):
        relative = _relative(module, target)
        form = rng.randrange(5)
        if form == 0 and relative:
            level, rest = relative
            base, _, leaf = rest.rpartition(".")
            out.append("from %s%s import %s\n" % ("." * level, base, leaf))
        elif form == 1 and relative:
            out.append("from %s%s import %s\n" % ("." * relative[0], relative[1], target.cls))
        elif form == 2:
            out.append("import %s as _%s_%d\n" % (target.name, target.stem, target.index))
        elif form == 3:
            out.append("from %s import (\n    %s,\n    %s as _%s_alias,\n)\n"
                       % (target.name, target.cls, target.cls, target.stem))
        else:
            out.append("import %s\n" % target.name)
    for target in rng.sample(far, min(len(far), rng.randint(0, 2))):
        out.append("from %s import %s\n" % (target.name, target.cls))
    out.append("\nif TYPE_CHECKING:\n    import %s\n" % rng.choice(THIRD_PARTY))
    if earlier:
        out.append("    from %s import %s\n" % (rng.choice(earlier).name, rng.choice(earlier).cls))
    out.append("\nlogger = logging.getLogger(__name__)\n\n")
    # Imports that run when a function is called: any module, later ones too.
    lazy = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(30)
        if kind < 10:
            lazy.append("import %s  # noqa: F401" % rng.choice(THIRD_PARTY))
        elif kind < 20 and earlier:
            lazy.append("import %s" % rng.choice(earlier).name)
        elif kind == 20 and earlier:  # rare, as in real code
            lazy.append("%s = importlib.import_module(%r)" % ("plugin", rng.choice(earlier).name))
        else:
            lazy.append("from %s import %s  # noqa: F401" % (rng.choice(STDLIB), "__name__"))
    if any("importlib." in line for line in lazy):
        out.insert(3, "import importlib\n")
    size = rng.choice((1, 1, 1, 2, 2, 2, 3, 3, 4, 7))
    out.append("\n\nclass %s:\n" % module.cls)
    out.append(_docstring(rng, "a %s of the %s layer" % (rng.choice(WORDS), module.stem), "    ", rng.randint(2, 8)))
    out.append("\n    def __init__(self, **options: Any) -> None:\n        self._options = options\n"
               "        self._lock = threading.Lock()\n\n")
    for k in range(size * 2):
        out.append(_function(rng, "%s_%s_%d" % (rng.choice(WORDS), rng.choice(WORDS), k), "    ", lazy))
    for k in range(size):
        out.append(_function(rng, "helper_%d" % k, "", lazy).replace("(self, ", "(", 1))
    return "".join(out)


def _init_source(rng: random.Random, package: str, exported: list[_Module]) -> str:
    out = [_docstring(rng, "the %s package" % package.rpartition(".")[2], "", rng.randint(2, 6)), "\n",
           "import importlib\nimport typing\n\n",
           "__all__ = [%s]\n\n" % ", ".join(repr(m.cls) for m in exported)]
    out.append("\ndef __getattr__(name: str) -> typing.Any:\n")
    out.append("    \"\"\"Load the submodule that defines `name` on first use.\"\"\"\n")
    for m in exported:
        out.append("    if name == %r:\n        return importlib.import_module(%r).%s\n" % (m.cls, m.name, m.cls))
    out.append("    raise AttributeError(name)\n")
    return "".join(out)


def _tool_source(rng: random.Random, index: int, modules: list[_Module]) -> str:
    target = rng.choice(modules)
    return (_docstring(rng, "a maintenance tool", "", 4) + "\nimport argparse\n\nfrom %s import %s\n\n"
            % (target.name, target.cls) + _function(rng, "main", "", []).replace("(self, ", "(", 1))


def generate(root: Path, files: int, seed: int = 0) -> Path:
    """Write a project of about `files` Python files under `root`; return its script."""
    rng = random.Random("%d/%d" % (seed, files))
    tools = max(1, files * 7 // 100)
    budget = max(2, files - tools - 1)  # package files: __init__.py and modules
    packages = _packages(max(1, budget // (MODULES_PER_PACKAGE + 1)))
    per_package = max(1, (budget - len(packages)) // len(packages))
    modules: list[_Module] = []
    for package in packages:
        directory = root.joinpath(*package.split("."))
        directory.mkdir(parents=True, exist_ok=True)
        own = []
        for k in range(per_package):
            module = _Module(len(modules), package, "%s_%s" % (WORDS[(len(modules) + k) % len(WORDS)], k))
            (directory / (module.stem + ".py")).write_text(_module_source(rng, module, modules))
            modules.append(module)
            own.append(module)
        (directory / "__init__.py").write_text(_init_source(rng, package, own[:6]))
    (root / "tools").mkdir(exist_ok=True)
    for k in range(tools):
        (root / "tools" / ("tool_%d.py" % k)).write_text(_tool_source(rng, k, modules))
    (root / "pyproject.toml").write_text("[project]\nname = \"%s\"\nversion = \"0\"\n" % PACKAGE)
    chosen = [modules[-1], modules[len(modules) // 2], modules[0]]
    script = root / SCRIPT
    script.write_text("\"\"\"The driver.\"\"\"\n\nimport %s\n%s\n\n\ndef main() -> None:\n    print(%s)\n\n\n"
                      "if __name__ == \"__main__\":\n    main()\n"
                      % (PACKAGE, "".join("from %s import %s\n" % (m.name, m.cls) for m in chosen),
                         ", ".join(m.cls for m in chosen)))
    return script
