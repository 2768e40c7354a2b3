"""Run a Modal function locally through Modal's own container entrypoint.

`emulate("scripts/pipeline.py::main")` plays both sides of `modal run` (`emulate(function)`
does the same for a Modal Function object defined in this process, such as a notebook's,
which Modal serializes):

- the client (this process): imports the script with Modal's own `import_file_or_module`
  (same module name, FILE or PACKAGE mode), reads the function's image layer by layer
  (`_modal.image_layers`), builds the function's definition from the values Modal's client
  computed for it (the closure of its loader), pickles the call's arguments with Modal's
  serializer, and at the end turns the container's output into the return value or the
  exception with Modal's own `_process_result`;
- the server: `_modal_server.StandInServer` on a unix socket;
- the container: `python -m modal._container_entrypoint`, run by the image interpreter in
  the working directory and environment of the image, reading its container arguments
  from MODAL_CONTAINER_ARGUMENTS_PATH; its stdout and stderr (the function's prints,
  Daft's workers) go straight to ours, as `modal run` streams them.

The container is laid out under a temporary root: the files each layer copies or mounts;
ENV and WORKDIR; hn_modulefix's install command run by the image interpreter (other RUN
steps are listed as not emulated); Modal's client mount (`/pkg/modal`, `/pkg/modal_proto`,
`/pkg/modal_version`, `/pkg/synchronicity` from this environment's modal) and its generated
`/pkg/sitecustomize.py`; the entrypoint mount (FILE mode: only the script at
/root/<stem>.py; PACKAGE mode: the top-level package under /root; serialized: nothing).
Absolute container paths under a directory the layers create are rebased under the root.
The script's own directory is hidden under an empty tmpfs while the container runs (in a
private mount namespace, when run as root); what this interpreter needs of it (a project's
`.venv`, a venv's own `bin` and `lib` when the script lies in the venv) is shown again.

The image interpreter is a fresh venv of this Python that sees this environment's
packages through plain path lines (none of their start-up hooks run), without
hn_modulefix (only the layer can provide it) and without modal (the client mount does).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import traceback
from typing import IO, TYPE_CHECKING, Any, Callable, Sequence

from hn_modulefix._hook import INSTALL_COMMAND
from hn_modulefix._modal import _closure, image_layers

if TYPE_CHECKING:
    import modal

DEFAULT_PYTHONPATH = ("/pkg", "/root")
TASK_ID = "ta-hn-modulefix-emulated"
APP_ID = "ap-hn-modulefix-emulated"
# Names the image interpreter must not see in this environment's package directories:
# hn_modulefix (editable or installed: the layer alone must provide it) and Modal's client,
# which a container gets from the client mount under /pkg, not from the image.
_NOT_IN_IMAGE = re.compile(r"^(hn_modulefix|_hn_modulefix_boot\.py|_editable_impl_hn_modulefix\.pth"
                           r"|__editable__.*hn_modulefix.*|hn_modulefix-.*\.(dist|egg)-info"
                           r"|modal|modal_proto|modal_version|modal_docs|synchronicity"
                           r"|(modal|synchronicity)-.*\.dist-info)$")


class EmulateUsageError(ValueError):
    """A mistake in what `emulate` was asked to run (not a failure of the function)."""


class Emulation:
    """The outcome of one emulated call: `value`, or `error` as Modal's client raises it."""

    def __init__(self, root: str, returncode: int, value: Any, error: BaseException | None, calls: list[str],
                 unanswered: list[str], notes: list[str]) -> None:
        self.root = root
        self.returncode = returncode  # of the container process
        self.value = value
        self.error = error
        self.calls = calls  # gRPC calls the container made, in order
        self.unanswered = unanswered
        self.notes = notes

    @property
    def ok(self) -> bool:
        return self.error is None


def _host_env() -> dict[str, str]:
    """This process's environment without what would leak this interpreter's imports or
    this process's Modal settings into the container."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith(("HN_MODULEFIX_", "MODAL_"))}


class _Container:
    def __init__(self, root: str, pythonpath: Sequence[str], notes: IO[str] | None) -> None:
        self.root = root
        self._notes_to = notes
        self.fs = os.path.join(root, "fs")
        self.image = os.path.join(root, "image")
        self.env: dict[str, str] = {}
        self.workdir = "/root"
        self.pythonpath = list(pythonpath)
        self.notes: list[str] = []
        os.makedirs(os.path.join(self.fs, "root"))
        os.makedirs(os.path.join(self.fs, "pkg"))

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self._notes_to is not None:
            print("note: %s" % text, file=self._notes_to, flush=True)

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
        # This environment's packages as a fresh interpreter of it sees them (site-packages
        # and what its .pth files add), minus the standard library, as plain path lines: so
        # none of their .pth hooks run.  A directory holding a name the image must not see
        # is replaced by a view of it without that name.
        probe = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.path))"],
                               cwd=self.root, env=_host_env(), check=True, stdout=subprocess.PIPE, text=True)
        stdlib = os.path.realpath(sysconfig.get_path("stdlib"))
        skip = {stdlib, os.path.join(stdlib, "lib-dynload"), os.path.realpath(self.root)}
        lines = []
        for number, entry in enumerate(probe.stdout.splitlines()):
            if not entry or not os.path.isdir(entry) or os.path.realpath(entry) in skip:
                continue
            names = os.listdir(entry)
            if any(_NOT_IN_IMAGE.match(name) for name in names):
                view = os.path.join(self.root, "host-packages", str(number))
                os.makedirs(view)
                for name in names:
                    if not _NOT_IN_IMAGE.match(name) and not name.endswith(".pth"):
                        os.symlink(os.path.join(entry, name), os.path.join(view, name))
                entry = view
            lines.append(entry + "\n")
        with open(os.path.join(site, "zz_emulated_image_packages.pth"), "w") as f:
            f.write("".join(lines))

    def process_env(self) -> dict[str, str]:
        env = _host_env()
        env["PATH"] = os.path.join(self.image, "bin") + os.pathsep + env.get("PATH", "")
        env["PYTHONPATH"] = os.pathsep.join(self.path(p) for p in self.pythonpath)
        env["MODAL_IS_REMOTE"] = "1"
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
                done = subprocess.run(["sh", "-c", self.rebase(rest)], cwd=self.path(self.workdir),
                                      env=self.process_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)
                if done.returncode != 0:
                    raise _ImageBuildError("image build step failed (exit %d): %s\n%s"
                                           % (done.returncode, command, done.stdout.rstrip()))
            elif verb not in ("FROM", "CMD"):
                self.note("not emulated: %s" % command)
        # ENV values may name paths that later layers create: rebase when the run starts.


class _ImageBuildError(Exception):
    """A build step the emulation runs failed, as the image build would."""


def _interpreter_paths() -> list[str]:
    """What the container's interpreter needs of this one (its image venv runs this
    interpreter's base executable and sees this environment's site-packages): the
    executables' directories, the standard library, site-packages, the shared library's
    directory and a venv's pyvenv.cfg; real paths."""
    paths = {os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable)),
             os.path.dirname(getattr(sys, "_base_executable", sys.executable)),
             os.path.join(sys.prefix, "pyvenv.cfg"), sysconfig.get_config_var("LIBDIR") or ""}
    paths.update(path for name, path in sysconfig.get_paths().items() if name not in ("data", "include", "platinclude"))
    return sorted({os.path.realpath(path) for path in paths if path and os.path.exists(path)})


def _visible_in(real: str, needed: Sequence[str]) -> list[str]:
    """The entries of the directory `real` (a real path) to show again over the tmpfs that
    hides it: those that hold what the interpreter needs (a project's `.venv`; a venv's
    `bin`, `lib`, `pyvenv.cfg` when the script lies in the venv itself), and symlinks to
    them (`lib64`) or to where it lies (a `.venv` linked to a venv elsewhere, which this
    interpreter's sys.path names through the link).  An error when the interpreter needs
    the directory itself."""
    names = set()
    for path in needed:
        if path == real or real.startswith(path + os.sep):
            raise EmulateUsageError("cannot hide %s, the script's directory, from the container: this "
                                    "interpreter needs all of %s; move the script out of it" % (real, path))
        if path.startswith(real + os.sep):
            names.add(path[len(real) + 1:].split(os.sep)[0])
    kept = [os.path.join(real, name) for name in names]
    for name in os.listdir(real):
        entry = os.path.join(real, name)
        target = os.path.realpath(entry)
        if os.path.islink(entry) and (any(target == k or target.startswith(k + os.sep) for k in kept)
                                      or any(p == target or p.startswith(target + os.sep) for p in needed)):
            names.add(name)
    return sorted(names)


def _hidden(command: list[str], hide: Sequence[tuple[str, Sequence[str]]], stash: str) -> list[str]:
    """`command` with each directory of `hide` covered by an empty tmpfs in a private mount
    namespace (root only), its listed entries shown again (`_visible_in`): nothing can reach
    the rest of the source tree.  While the tmpfs goes up, a second mount of the directory
    at `stash` keeps those entries reachable; it is gone before `command` starts."""
    if not hide:
        return command
    lines = ["set -e"]
    for number, (directory, keep) in enumerate(hide):
        held = os.path.join(stash, str(number))
        if keep:
            os.makedirs(held)
            lines.append("mount --bind %s %s" % (shlex.quote(directory), shlex.quote(held)))
        lines.append("mount -t tmpfs hidden %s" % shlex.quote(directory))
        for name in keep:
            original, shown = os.path.join(directory, name), shlex.quote(os.path.join(directory, name))
            if os.path.islink(original):
                lines.append("ln -s %s %s" % (shlex.quote(os.readlink(original)), shown))
                continue
            lines.append(("mkdir %s" if os.path.isdir(original) else "touch %s") % shown)
            lines.append("mount --bind %s %s" % (shlex.quote(os.path.join(held, name)), shown))
        if keep:
            lines.append("umount %s" % shlex.quote(held))
    lines.append('exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines), "sh", *command]


class _Target:
    """What `SCRIPT::NAME` or `SCRIPT::Cls.method` names, as Modal's client sees it."""

    def __init__(self, module: Any, ref: str, name: str, defined: Any = None) -> None:
        import modal
        from modal._utils.async_utils import synchronizer
        from modal_proto import api_pb2

        self.module = module
        self.method_name = ""
        object_name, _, method = name.partition(".")
        if defined is None:
            defined = getattr(module, object_name, None)
        modal_names = sorted(n for n, v in vars(module).items() if isinstance(v, (modal.Function, modal.Cls)))
        if defined is None:
            raise EmulateUsageError("%s: no function %r there (its Modal functions and classes: %s)"
                                    % (ref, object_name, ", ".join(modal_names) or "none"))
        if isinstance(defined, modal.Cls):
            cls = synchronizer._translate_in(defined)  # type: ignore[no-untyped-call]
            methods = sorted(cls._get_partial_functions())
            if method not in methods:
                raise EmulateUsageError("%s: name a method of class %s: %s::%s.METHOD (its methods: %s)"
                                        % (ref, object_name, ref.partition("::")[0], object_name, ", ".join(methods)))
            self.function = cls._get_class_service_function()
            self.method_name = method
        elif isinstance(defined, modal.Function):
            if method:
                raise EmulateUsageError("%s: %s is a Modal function, not a class: %s::%s"
                                        % (ref, object_name, ref.partition("::")[0], object_name))
            self.function = synchronizer._translate_in(defined)  # type: ignore[no-untyped-call]
        else:
            raise EmulateUsageError("%s: %r is not a Modal function: decorate it with @app.function() "
                                    "(app = modal.App(...)), or its class with @app.cls()"
                                    % (ref, name))
        self.loaded = _closure(self.function._load)
        self.info = self.loaded["info"]
        webhook = self.loaded["webhook_config"]
        if self.loaded["function_type"] == api_pb2.Function.FUNCTION_TYPE_GENERATOR or (webhook and webhook.type):
            raise EmulateUsageError("%s: generators and web endpoints are not emulated (nor run by `modal run`)" % ref)

    def deps(self) -> list[Any]:
        return list(self.loaded["_deps"](only_explicit_mounts=True))

    def class_parameters(self, given: Sequence[str]) -> bytes:
        """`NAME=VALUE` pairs for the class's `modal.parameter()`s, encoded as Modal's client
        sends them (protobuf, defaults applied): never pickled, in modal 1.6."""
        from modal._serialization import apply_defaults, serialize_proto_params, validate_parameter_values
        from modal.exception import InvalidError
        from modal_proto import api_pb2

        info = self.info.class_parameter_info()
        if info.format != api_pb2.ClassParameterInfo.PARAM_SERIALIZATION_FORMAT_PROTO:
            if given:
                raise EmulateUsageError("--param: %s has no modal.parameter() fields" % self.info.function_name)
            return b""
        types = {spec.name: spec.full_type.base_type or spec.type for spec in info.schema}
        parsers: dict[int, Callable[[str], Any]] = {
            api_pb2.PARAM_TYPE_INT: int, api_pb2.PARAM_TYPE_BYTES: str.encode, api_pb2.PARAM_TYPE_BOOL: _boolean}
        values: dict[str, Any] = {}
        for pair in given:
            name, sep, text = pair.partition("=")
            if not sep or name not in types:
                raise EmulateUsageError("--param %s: expected NAME=VALUE with NAME one of %s"
                                        % (pair, ", ".join(sorted(types)) or "(none)"))
            parse = parsers.get(types[name], str)
            try:
                values[name] = parse(text)
            except ValueError as exc:
                raise EmulateUsageError("--param %s: %s" % (pair, exc)) from exc
        values = apply_defaults(values, info.schema)
        try:
            validate_parameter_values(values, info.schema)
        except InvalidError as exc:
            raise EmulateUsageError("--param: %s" % exc) from exc
        return serialize_proto_params(values)

    def container_arguments(self, dep_ids: Sequence[str], parameters: bytes) -> Any:
        """ContainerArguments as Modal's server sends them for this function, with the
        fields the container reads taken from what Modal's client computed."""
        from modal._serialization import serialize
        from modal_proto import api_pb2

        info, loaded = self.info, self.loaded
        serialized = info.is_serialized()
        function_def = api_pb2.Function(
            module_name=info.module_name or "",
            function_name=info.function_name,
            implementation_name=info.implementation_name,
            definition_type=info.get_definition_type(),
            function_serialized=info.serialized_function() if serialized else b"",
            class_serialized=serialize(info.user_cls) if serialized and info.user_cls is not None else b"",
            function_type=loaded["function_type"],
            method_definitions=loaded["method_definitions"] or {},
            method_definitions_set=True,
            app_name=(self.function._app and self.function._app.name) or "",
            is_class=info.is_service_class(),
            class_parameter_info=info.class_parameter_info(),
            object_dependencies=[api_pb2.ObjectDependency(object_id=i) for i in dep_ids],
            supported_input_formats=loaded["supported_input_formats"],
            supported_output_formats=loaded["supported_output_formats"],
        )
        layout = self._app_layout(dep_ids)
        return api_pb2.ContainerArguments(task_id=TASK_ID, function_id=layout.function_ids[info.function_name],
                                          app_id=APP_ID, function_def=function_def, app_layout=layout,
                                          serialized_params=parameters)

    def _app_layout(self, dep_ids: Sequence[str]) -> Any:
        """Ids and handle metadata for every function and class of the app, as the
        container hydrates them (`App._init_container`), and for the dependencies."""
        from modal_proto import api_pb2

        layout = api_pb2.AppLayout()
        app = self.function._app
        functions = dict(app._local_state.functions) if app else {}
        functions.setdefault(self.info.function_name, self.function)
        for number, (tag, function) in enumerate(sorted(functions.items())):
            loaded = _closure(function._load)
            function_id = "fu-hnmf%d" % number
            layout.function_ids[tag] = function_id
            methods = {name: api_pb2.FunctionHandleMetadata(
                function_name=definition.function_name, function_type=definition.function_type,
                use_method_name=name, is_method=True, supported_input_formats=definition.supported_input_formats,
                supported_output_formats=definition.supported_output_formats)
                for name, definition in (loaded["method_definitions"] or {}).items()}
            layout.objects.add(object_id=function_id, function_handle_metadata=api_pb2.FunctionHandleMetadata(
                function_name=tag, function_type=loaded["function_type"], app_id=APP_ID,
                class_parameter_info=loaded["info"].class_parameter_info(), method_handle_metadata=methods,
                supported_input_formats=loaded["supported_input_formats"],
                supported_output_formats=loaded["supported_output_formats"]))
        for number, tag in enumerate(sorted(app._local_state.classes) if app else []):
            class_id = "cs-hnmf%d" % number
            layout.class_ids[tag] = class_id
            layout.objects.add(object_id=class_id, class_handle_metadata=api_pb2.ClassHandleMetadata())
        for dep_id in dep_ids:
            layout.objects.add(object_id=dep_id)
        return layout

    def function_input(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """The call's arguments as Modal's client sends them (`_create_input`)."""
        from modal._serialization import get_preferred_payload_format, serialize_data_format
        from modal._utils.blob_utils import MAX_OBJECT_SIZE_BYTES
        from modal_proto import api_pb2

        formats = self.loaded["supported_input_formats"]
        if self.method_name:
            formats = self.loaded["method_definitions"][self.method_name].supported_input_formats
        data_format = get_preferred_payload_format()
        if formats and data_format not in formats:
            data_format = formats[0]
        payload = serialize_data_format((tuple(args), kwargs), data_format)
        if len(payload) > MAX_OBJECT_SIZE_BYTES:
            raise EmulateUsageError("the arguments are %d bytes pickled: Modal sends more than %d through blob "
                                    "storage, which the emulation does not cover" % (len(payload), MAX_OBJECT_SIZE_BYTES))
        return api_pb2.FunctionInput(args=payload, data_format=data_format, method_name=self.method_name)


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError("expected true or false, not %r" % text)
    return text.lower() in ("true", "1")


def _import_target(ref: str, module_mode: bool) -> tuple[Any, str]:
    from modal.cli.import_refs import ImportRef, import_file_or_module
    from modal.exception import InvalidError, _CliUserExecutionError

    target, sep, name = ref.partition("::")
    if not sep or not name or not target:
        raise EmulateUsageError("%r: name the function: %s::FUNCTION (or SCRIPT::CLASS.METHOD)"
                                % (ref, target or ("MODULE" if module_mode else "SCRIPT")))
    if not module_mode and not os.path.isfile(target):
        raise EmulateUsageError("%s: no such script" % target)
    try:
        module = import_file_or_module(ImportRef(target, module_mode, name, "modal run"), "modal run")
    except InvalidError as exc:
        raise EmulateUsageError("%s: %s" % (target, exc)) from exc
    except _CliUserExecutionError as exc:
        cause = exc.__cause__
        if module_mode and isinstance(cause, ModuleNotFoundError) and cause.name \
                and (target + ".").startswith(cause.name + "."):
            raise EmulateUsageError("%s: no such module (from %s)" % (target, os.getcwd())) from exc
        raise
    return module, name


def _function_target(function: Any) -> _Target:
    """The target for a Modal Function object defined in this process: how a notebook
    names its function (Modal serializes a function defined there; the container unpickles
    it and imports no module of the user's)."""
    import modal
    from modal._utils.async_utils import synchronizer

    if not isinstance(function, modal.Function):
        raise EmulateUsageError("emulate(%r): pass 'SCRIPT::FUNC' or a modal.Function" % (function,))
    info = _closure(synchronizer._translate_in(function)._load)["info"]  # type: ignore[no-untyped-call]
    module = sys.modules[(info.raw_f or info.user_cls).__module__]
    return _Target(module, "%s::%s" % (module.__name__, info.function_name), info.function_name, defined=function)


def _source_dir(target: _Target, module_mode: bool) -> str:
    """The user's source tree, which the container must not see: the script's directory
    (FILE mode), its top-level package (PACKAGE mode); for a function defined where
    `__main__` has no file (a notebook's), the project found from the working directory."""
    from hn_modulefix._bundle import project_root

    module = target.module
    if module_mode:
        return str(list(sys.modules[module.__name__.split(".")[0]].__path__)[0])
    script = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(script)) if script else project_root(os.getcwd())


def _await(coroutine: Any) -> Any:
    """Run `coroutine` to its end, also where this thread already runs an event loop
    (a notebook cell runs inside the kernel's): there, in a thread of its own."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def emulate(ref: str | modal.Function[..., Any, Any], *, module_mode: bool = False, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
            args_from: str | None = None, params: Sequence[str] = (), pythonpath: Sequence[str] = DEFAULT_PYTHONPATH, hide_source: bool = True,
            root: str | None = None, keep: bool = False, timeout: float = 600, stdout: IO[str] | None = None,
            stderr: IO[str] | None = None, notes: IO[str] | None = None) -> Emulation:
    """Call `FUNC` of `SCRIPT::FUNC` (`MODULE::FUNC` with module_mode, `...::Cls.method`
    for a method of an @app.cls class), or the Modal Function object `ref` defined in this
    process (in a notebook: Modal serializes it), once in a stand-in container.

    `args` (or the tuple returned by calling the script's function `args_from` here) and
    `kwargs` are pickled here as Modal's client pickles them and unpickled in the
    container by Modal's runner; `params` (`NAME=VALUE`) set an @app.cls class's
    `modal.parameter()` fields, sent as Modal sends them (protobuf).  The container's output goes to `stdout`/`stderr`
    (default: this process's); each note on what is not emulated goes to `notes` as it
    arises.  The container is laid out under `root` (default: a temporary directory,
    removed afterwards unless `keep`).
    """
    from hn_modulefix._modal_server import check_modal_version

    try:
        check_modal_version()
    except RuntimeError as exc:
        raise EmulateUsageError(str(exc)) from exc
    if isinstance(ref, str):
        module, name = _import_target(ref, module_mode)
        target = _Target(module, ref, name)
    else:
        target = _function_target(ref)
        module_mode = False
    if args_from is not None:
        maker = getattr(target.module, args_from, None)
        if not callable(maker):
            raise EmulateUsageError("%s: --args-from %s: no such function in %s"
                                    % (ref, args_from, target.module.__name__))
        args = tuple(maker())
    function_input = target.function_input(args, kwargs or {})
    parameters = target.class_parameters(params)

    container = _Container(root or tempfile.mkdtemp(prefix="hn_modulefix-container-"), pythonpath, notes)
    try:
        return _run(container, target, function_input, parameters, module_mode, hide_source, timeout, stdout, stderr)
    finally:
        if root is None and not keep:
            shutil.rmtree(container.root, ignore_errors=True)


def _source_to_hide(container: _Container, target: _Target, module_mode: bool) -> list[tuple[str, list[str]]]:
    """The user's source tree (see _source_dir), as a real path, with the entries of it that
    stay visible: the interpreter's own files."""
    directory = os.path.realpath(_source_dir(target, module_mode))
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        container.note("source tree not hidden: needs root and unshare")
        return []
    if os.path.realpath(container.root).startswith(directory + os.sep):
        container.note("source tree not hidden: the container root %s lies inside it" % container.root)
        return []
    return [(directory, _visible_in(directory, _interpreter_paths()))]


def _run(container: _Container, target: _Target, function_input: Any, parameters: bytes, module_mode: bool,
         hide_source: bool, timeout: float, stdout: IO[str] | None, stderr: IO[str] | None) -> Emulation:
    from modal._utils.function_utils import _process_result
    from modal.image import _Image  # type: ignore[attr-defined]  # absent from modal's stubs
    from modal.mount import SITECUSTOMIZE_CONTENT, _create_client_mount  # type: ignore[attr-defined]
    from modal_proto import api_pb2

    from hn_modulefix._modal_server import StandInServer

    hide = _source_to_hide(container, target, module_mode) if hide_source else []
    container.make_interpreter()
    for layer in image_layers(target.function._spec.image):
        try:
            container.apply(layer.kind, layer.commands, layer.files)
        except _ImageBuildError as exc:
            return Emulation(container.root, -1, None, exc, [], [], container.notes)
    client_mount = _create_client_mount()  # type: ignore[no-untyped-call]
    for mount in [client_mount, *target.info.get_entrypoint_mount().values()]:
        container.add_files([(str(local), str(remote)) for entry in mount.entries
                             for local, remote in entry.get_files_to_upload()])
    with open(container.path("/pkg/sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE_CONTENT + "\n")

    deps = target.deps()
    dep_ids = ["%s-hnmfdep%d" % (type(dep)._type_prefixes[0], number) for number, dep in enumerate(deps)]
    for dep in deps:
        if not isinstance(dep, _Image):
            container.note("not emulated: %r (given a stand-in id, no contents)" % dep)
    arguments_path = os.path.join(container.root, "container_arguments.bin")
    with open(arguments_path, "wb") as f:
        f.write(target.container_arguments(dep_ids, parameters).SerializeToString())

    env = container.process_env()
    env.update({k: container.rebase(v) for k, v in container.env.items()})
    env["MODAL_CONTAINER_ARGUMENTS_PATH"] = arguments_path
    env["MODAL_TASK_ID"] = TASK_ID
    cwd = container.path(container.workdir)
    os.makedirs(cwd, exist_ok=True)
    command = [os.path.join(container.image, "bin", "python"), "-m", "modal._container_entrypoint"]

    # A directory of its own: a unix socket path must stay short (108 bytes on Linux).
    socket_dir = tempfile.mkdtemp(prefix="hn_modulefix-")
    try:
        server = StandInServer(os.path.join(socket_dir, "modal.sock"), function_input)
        with server:
            env["MODAL_SERVER_URL"] = server.url
            process = subprocess.Popen(_hidden(command, hide, os.path.join(container.root, "hidden")), cwd=cwd,
                                       env=env, stdout=stdout, stderr=stderr, start_new_session=True)
            timed_out = False
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                if process.poll() is None:  # timed out, or this process was interrupted
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
    if timed_out:
        stopped = TimeoutError("the container ran longer than %gs: stopped it and every process it started" % timeout)
        return Emulation(container.root, process.returncode, None, stopped, server.calls, server.unanswered,
                         container.notes)

    # The input's result: its output, or the task's failure (an import that failed), which
    # Modal's server hands to the caller in place of an output.
    results = [(item.result, item.data_format) for item in server.outputs]
    results += [(result, api_pb2.DATA_FORMAT_UNSPECIFIED) for result in server.task_results]
    if not results:
        error = RuntimeError("the container exited with status %d and sent no result" % returncode)
        return Emulation(container.root, returncode, None, error, server.calls, server.unanswered, container.notes)
    result, data_format = results[0]
    try:
        value = _await(_process_result(result, data_format, None, None))
    except Exception as exc:
        return Emulation(container.root, returncode, None, exc, server.calls, server.unanswered, container.notes)
    return Emulation(container.root, returncode, value, None, server.calls, server.unanswered, container.notes)


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="SCRIPT::FUNC",
                        help="as for `modal run` (MODULE::FUNC with -m; SCRIPT::CLASS.METHOD for an @app.cls method)")
    parser.add_argument("-m", dest="module_mode", action="store_true", help="import a module, as `modal run -m`")
    parser.add_argument("--args-from", metavar="NAME",
                        help="call the script's function NAME locally; its tuple is FUNC's arguments")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a modal.parameter() of the @app.cls class (repeatable)")
    parser.add_argument("--pythonpath", default=":".join(DEFAULT_PYTHONPATH), metavar="DIRS",
                        help="the container's PYTHONPATH (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=600, metavar="SECONDS",
                        help="stop the container after this long (default: %(default)g)")
    parser.add_argument("--root", metavar="DIR", help="lay the container out here (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary container directory")
    parser.add_argument("--calls", action="store_true",
                        help="list the gRPC calls the container made to the stand-in server")


def _remote_part(error: BaseException) -> Any:
    """The traceback from the first frame Modal's client marks as the container's on
    (None when it has none: the frames of this process say nothing about the function)."""
    marker = "<%s>:" % TASK_ID
    tb = error.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(marker):
        tb = tb.tb_next
    return tb


def cli_run(args: argparse.Namespace) -> int:
    from modal._traceback import reduce_traceback_to_user_code
    from modal.exception import _CliUserExecutionError

    try:
        result = emulate(args.ref, module_mode=args.module_mode, args_from=args.args_from, params=args.param,
                         pythonpath=[p for p in args.pythonpath.split(":") if p], root=args.root, keep=args.keep,
                         timeout=args.timeout,
                         notes=sys.stdout)
    except EmulateUsageError as exc:
        if os.environ.get("HN_MODULEFIX_DEBUG") == "1":
            traceback.print_exc()
        print("hn-modulefix emulate: error: %s" % exc, file=sys.stderr)
        return 2
    except _CliUserExecutionError as exc:
        # The script failed while this process imported it, as under `modal run`.
        cause = exc.__cause__
        assert cause is not None
        traceback.print_exception(type(cause), cause, reduce_traceback_to_user_code(cause.__traceback__,
                                                                                      exc.user_source))
        return 1
    if result.unanswered:
        print("note: the container made calls the stand-in server does not answer: %s"
              % ", ".join(sorted(set(result.unanswered))))
    if args.keep or args.root:
        print("container: %s" % result.root)
    if args.calls:
        print("calls: %s" % " ".join(result.calls))
    if result.ok:
        print("result: %r" % (result.value,))
        return 0
    sys.stdout.flush()
    error = result.error
    assert error is not None
    traceback.print_exception(type(error), error, _remote_part(error))
    return 1
