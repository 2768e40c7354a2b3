"""A stand-in Modal container on local disk, for proving image layers without Modal.

`emulate("scripts/pipeline.py::main")` does locally what `modal run` does (Modal's own
`import_file_or_module`, so the script gets the same module name and mode), reads the
function's image layer by layer (`_modal.image_layers`), lays the container out under a
temporary root and runs the function there the way Modal's runner does (Modal's own
`import_single_function_service` and `deserialize`, after its task manager exists).

What is faithful: the files each layer copies or mounts and where; the image's ENV and
WORKDIR; hn_modulefix's install command, run by the image interpreter; Modal's entrypoint
mount (FILE mode: only the script at /root/<stem>.py; PACKAGE mode: the top-level package
under /root; serialized functions: nothing); Modal's generated /pkg/sitecustomize.py,
first on PYTHONPATH; MODAL_IS_REMOTE=1 inherited by every child; the script's own
directory hidden while the container runs (a tmpfs over it, when run as root).

What it does not cover: the base image and package installs (the image interpreter is a
fresh venv of this Python that sees this environment's packages, without their start-up
hooks), RUN steps other than hn_modulefix's own (listed as skipped), container paths
(every absolute path under a directory the layers create is rebased under the stand-in
root), Modal's own process and I/O protocol, GPUs, volumes, secrets, and whether real
containers put /root on PYTHONPATH (documented publicly, not checked; `pythonpath=`
models either way).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from typing import Any, Sequence

from hn_modulefix._hook import INSTALL_COMMAND
from hn_modulefix._modal import image_layers

DEFAULT_PYTHONPATH = ("/pkg", "/root")
RUNNER_MODULE = "hn_modulefix_emulated_runner"
# Any call that would reach Modal's servers fails at once on this closed local port.
OFFLINE_SERVER_URL = "http://127.0.0.1:9"

_RUNNER = '''"""Stand-in for `python -m modal._container_entrypoint` (written by hn_modulefix)."""
import json
import os
import sys
import traceback

from modal._runtime import execution_context
from modal._runtime.task_lifecycle_manager import _TaskLifecycleManager
from modal._runtime.user_code_imports import import_single_function_service
from modal._serialization import deserialize, serialize
from modal_proto import api_pb2


def main(payload_dir):
    def read(name):
        path = os.path.join(payload_dir, name)
        return open(path, "rb").read() if os.path.exists(path) else None

    definition = json.loads(read("definition.json"))
    # As in the real runner, the task manager exists before any user code: is_local() is False.
    _TaskLifecycleManager("ta-emulated", "fu-emulated", api_pb2.Function(), None, None)
    args_bytes = read("args.pkl")
    args, kwargs = (), {}
    if definition["args_first"]:
        # Modal unpickles @app.cls parameters before importing the user's module.
        args, kwargs = deserialize(args_bytes, None)
    ser_fun = deserialize(read("function.pkl"), None) if definition["serialized"] else None
    function_def = api_pb2.Function(
        module_name=definition["module_name"] or "", function_name=definition["function_name"],
        implementation_name=definition["function_name"], definition_type=definition["definition_type"])
    with execution_context._import_context():
        service = import_single_function_service(function_def, ser_fun)
    if not definition["args_first"] and args_bytes is not None:
        args, kwargs = deserialize(args_bytes, None)
    value = service._user_defined_callable(*args, **kwargs)
    facts = {
        "modal_sitecustomize_ran": "/__modal/deps" in sys.path,
        "hn_modulefix_finder": any(getattr(f, "_hn_modulefix_finder", False) for f in sys.meta_path),
        "cwd": os.getcwd(),
    }
    with open(os.path.join(payload_dir, "result.pkl"), "wb") as f:
        f.write(serialize({"value": value, "facts": facts}))


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
'''


class Emulation:
    """The outcome of one emulated container run."""

    def __init__(self, root: str, returncode: int, stdout: str, stderr: str, value: Any, facts: dict[str, Any],
                 notes: list[str]) -> None:
        self.root = root
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.value = value
        self.facts = facts
        self.notes = notes

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _host_env() -> dict[str, str]:
    """This process's environment without what would leak this interpreter's imports."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("HN_MODULEFIX_")}


class _Container:
    def __init__(self, root: str, pythonpath: Sequence[str]) -> None:
        self.root = root
        self.fs = os.path.join(root, "fs")
        self.image = os.path.join(root, "image")
        self.env: dict[str, str] = {}
        self.workdir = "/root"
        self.pythonpath = list(pythonpath)
        self.notes: list[str] = []
        os.makedirs(os.path.join(self.fs, "root"))
        os.makedirs(os.path.join(self.fs, "pkg"))

    def path(self, container_path: str) -> str:
        return os.path.join(self.fs, container_path.lstrip("/"))

    def rebase(self, text: str) -> str:
        """Absolute container paths under a directory the layers created -> host paths."""
        tops = sorted(os.listdir(self.fs), key=len, reverse=True)
        if not tops:
            return text
        pattern = r"(?<![\w./-])/(%s)(?=/|$|[\s:;'\"])" % "|".join(re.escape(t) for t in tops)
        return re.sub(pattern, lambda m: self.path(m.group(0)), text)

    def add_files(self, files: Sequence[tuple[str, str]]) -> None:
        for local, remote in files:
            target = self.path(remote)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(local, target)

    def make_interpreter(self) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", self.image], check=True)
        python = os.path.join(self.image, "bin", "python")
        site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        # This environment's packages (site-packages and what its .pth files add), as a
        # fresh interpreter of it sees them, minus the standard library: plain path lines,
        # so they are importable but none of their .pth hooks run.
        probe = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sys.path))"],
                               cwd=self.root, env=_host_env(), check=True, stdout=subprocess.PIPE, text=True)
        stdlib = os.path.realpath(sysconfig.get_path("stdlib"))
        skip = {stdlib, os.path.join(stdlib, "lib-dynload"), os.path.realpath(self.root)}
        packages = [p for p in json.loads(probe.stdout) if p and os.path.isdir(p) and os.path.realpath(p) not in skip]
        with open(os.path.join(site, "zz_emulated_image_packages.pth"), "w") as f:
            f.write("".join(p + "\n" for p in packages))

    def process_env(self) -> dict[str, str]:
        env = _host_env()
        env["PATH"] = os.path.join(self.image, "bin") + os.pathsep + env.get("PATH", "")
        env["PYTHONPATH"] = os.pathsep.join(self.path(p) for p in self.pythonpath)
        env["MODAL_IS_REMOTE"] = "1"
        env["MODAL_SERVER_URL"] = OFFLINE_SERVER_URL
        env.update(self.env)
        return env

    def apply(self, layer_kind: str, commands: Sequence[str], files: Sequence[tuple[str, str]]) -> None:
        if layer_kind == "mount":
            self.add_files(files)
            return
        for command in commands:
            verb, _, rest = command.partition(" ")
            if verb == "COPY" and rest == ". /":
                self.add_files(files)
            elif verb == "ENV":
                for pair in shlex.split(rest):
                    key, _, value = pair.partition("=")
                    self.env[key] = value
            elif verb == "WORKDIR":
                self.workdir = shlex.split(rest)[0]
            elif verb == "RUN" and INSTALL_COMMAND in rest:
                os.makedirs(self.path(self.workdir), exist_ok=True)
                subprocess.run(["sh", "-c", self.rebase(rest)], cwd=self.path(self.workdir),
                               env=self.process_env(), check=True, stdout=subprocess.DEVNULL)
            elif verb not in ("FROM", "CMD"):
                self.notes.append("not emulated: %s" % command)
        # ENV values may name paths that later layers create: rebase when the run starts.


def _hidden(command: list[str], directories: Sequence[str]) -> list[str]:
    """`command` with each directory covered by an empty tmpfs in a private mount
    namespace (root only): nothing can reach the original source tree."""
    if not directories:
        return command
    script = "".join('mount -t tmpfs hidden "$%d" && ' % (i + 1) for i in range(len(directories)))
    script += "shift %d && exec \"$@\"" % len(directories)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *directories, *command]


def emulate(ref: str, *, module_mode: bool = False, args: Sequence[Any] = (), args_from: str | None = None,
            args_first: bool = False, pythonpath: Sequence[str] = DEFAULT_PYTHONPATH, hide_source: bool = True,
            root: str | None = None, keep: bool = False, timeout: float = 600) -> Emulation:
    """Run `FUNC` of `SCRIPT::FUNC` (or `MODULE::FUNC` with module_mode) in a stand-in container.

    This process plays `modal run`'s local side: it imports the script.  `args` (or the
    tuple returned by calling the script's function `args_from` here) are pickled here
    with Modal's pickler and unpickled in the container; `args_first` unpickles them
    before the script is imported, as Modal does for @app.cls parameters.  The container
    is laid out under `root` (default: a temporary directory, removed afterwards unless
    `keep`).
    """
    from modal._utils.async_utils import synchronizer
    from modal.cli.import_refs import ImportRef, import_file_or_module

    target, sep, function_name = ref.partition("::")
    if not sep or not function_name:
        raise ValueError("%r: expected SCRIPT::FUNCTION (or MODULE::FUNCTION with module mode)" % ref)
    os.environ.setdefault("MODAL_SERVER_URL", OFFLINE_SERVER_URL)
    module = import_file_or_module(ImportRef(target, module_mode, function_name, "modal run"))
    function = synchronizer._translate_in(getattr(module, function_name))  # type: ignore[no-untyped-call]
    if args_from is not None:
        args = tuple(getattr(module, args_from)())

    container = _Container(root or tempfile.mkdtemp(prefix="hn_modulefix-container-"), pythonpath)
    try:
        return _run(container, module, function, function_name, args, args_first, module_mode, hide_source,
                    timeout)
    finally:
        if root is None and not keep:
            shutil.rmtree(container.root, ignore_errors=True)


def _run(container: _Container, module: Any, function: Any, function_name: str, args: Sequence[Any],
         args_first: bool, module_mode: bool, hide_source: bool, timeout: float) -> Emulation:
    from modal._serialization import deserialize, serialize
    from modal.mount import SITECUSTOMIZE_CONTENT  # type: ignore[attr-defined]  # absent from modal's stubs

    info = function._source_info
    container.make_interpreter()
    for layer in image_layers(function._spec.image):
        container.apply(layer.kind, layer.commands, layer.files)
    for mount in info.get_entrypoint_mount().values():
        container.add_files([(str(local), str(remote)) for entry in mount.entries
                             for local, remote in entry.get_files_to_upload()])
    with open(container.path("/pkg/sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE_CONTENT + "\n")
    with open(container.path("/pkg/%s.py" % RUNNER_MODULE), "w") as f:
        f.write(_RUNNER)

    payload = os.path.join(container.root, "payload")
    os.makedirs(payload)
    with open(os.path.join(payload, "definition.json"), "w") as f:
        json.dump({"module_name": info.module_name, "function_name": function_name, "args_first": args_first,
                   "serialized": info.is_serialized(), "definition_type": info.get_definition_type()}, f)
    if info.is_serialized():
        with open(os.path.join(payload, "function.pkl"), "wb") as f:
            f.write(info.serialized_function())
    if args:
        with open(os.path.join(payload, "args.pkl"), "wb") as f:
            f.write(serialize((tuple(args), {})))

    container.env = {k: container.rebase(v) for k, v in container.env.items()}
    cwd = container.path(container.workdir)
    os.makedirs(cwd, exist_ok=True)
    command = [os.path.join(container.image, "bin", "python"), "-m", RUNNER_MODULE, payload]
    # The script's own directory (FILE mode) or its top-level package (PACKAGE mode).
    top = sys.modules[module.__name__.split(".")[0]]
    source_dirs = [os.path.dirname(os.path.abspath(module.__file__)) if not module_mode
                   else list(top.__path__)[0]] if hide_source else []
    if source_dirs and (os.geteuid() != 0 or shutil.which("unshare") is None):
        container.notes.append("source tree not hidden: needs root and unshare")
        source_dirs = []
    done = subprocess.run(_hidden(command, source_dirs), cwd=cwd, env=container.process_env(), timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    value, facts = None, {}
    result_path = os.path.join(payload, "result.pkl")
    if done.returncode == 0 and os.path.exists(result_path):
        with open(result_path, "rb") as f:
            result = deserialize(f.read(), None)
        value, facts = result["value"], result["facts"]
    return Emulation(container.root, done.returncode, done.stdout, done.stderr, value, facts, container.notes)


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="SCRIPT::FUNC", help="as for `modal run` (MODULE::FUNC with -m)")
    parser.add_argument("-m", dest="module_mode", action="store_true", help="import a module, as `modal run -m`")
    parser.add_argument("--args-from", metavar="NAME",
                        help="call the script's function NAME locally; its tuple is FUNC's arguments")
    parser.add_argument("--args-first", action="store_true",
                        help="unpickle the arguments before importing the script (as for @app.cls parameters)")
    parser.add_argument("--pythonpath", default=":".join(DEFAULT_PYTHONPATH), metavar="DIRS",
                        help="the container's PYTHONPATH (default: %(default)s)")
    parser.add_argument("--root", metavar="DIR", help="lay the container out here (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary container directory")


def cli_run(args: argparse.Namespace) -> int:
    result = emulate(args.ref, module_mode=args.module_mode, args_from=args.args_from, args_first=args.args_first,
                     pythonpath=[p for p in args.pythonpath.split(":") if p], root=args.root, keep=args.keep)
    for note in result.notes:
        print("note: %s" % note)
    if args.keep or args.root:
        print("container: %s" % result.root)
    if result.ok:
        for key, value in sorted(result.facts.items()):
            print("%s: %s" % (key, value))
        print("result: %r" % (result.value,))
        return 0
    sys.stderr.write(result.stderr)
    print("failed: exit %d" % result.returncode)
    return 1
