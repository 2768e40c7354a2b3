"""Dask integration: one plugin, registered with ``client.register_plugin(...)``, with which
the scheduler, every worker (those running now, those that join or restart later) and every
process a worker starts resolve the scripts' modules.

Dask unpickles in three places: the scheduler deserializes every task graph
(dask/distributed#7834), workers unpickle tasks and data, and a worker's children (Daft's
UDF processes) unpickle what the worker hands them.  The plugin is a SchedulerPlugin: its
``start`` installs the finder in the scheduler process and registers a WorkerPlugin, which
the scheduler keeps and sets up on every worker that connects, a restarted one included.

Neither process needs hn_modulefix installed: the plugin carries the bundle, the package and
its boot module in one zip, and pickles as a call of the built-in ``eval`` on a few lines
of standard-library code that unpack it into a private temporary directory and import the
package from there.  A worker exports ``HN_MODULEFIX_MANIFEST`` and a ``PYTHONPATH`` that
starts with the hook's ``sitecustomize.py`` to the processes it starts.

A long-lived worker may already hold an older version of a listed module (its own
checkout, an earlier plugin).  Every process runs the bytes the driver ran, so at setup a
process that holds any listed module whose file has other bytes drops every listed module
from ``sys.modules``: the next task imports them all again, from the driver's bytes.  What
it dropped is logged as a Dask event, topic ``hn_modulefix``.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import uuid
import zipfile
from typing import TYPE_CHECKING, Any, Callable, Iterable

from _hn_modulefix_boot import ENV_MANIFEST
from hn_modulefix._bundle import PathLike, Script, calling_scripts, driver_snapshot
from hn_modulefix._finder import install, uninstall
from hn_modulefix._hook import stage
from hn_modulefix._manifest import MANIFEST_NAME, SourceChanged, load, read_matching, sha256_bytes

if TYPE_CHECKING:
    from distributed.diagnostics.plugin import SchedulerPlugin

EVENT_TOPIC = "hn_modulefix"
_LOG = logging.getLogger("hn_modulefix")

# Run by `eval` wherever a plugin is unpickled, before hn_modulefix can be imported there:
# standard library only.  A process that has this module already (the driver, a process
# that set up an earlier plugin) uses it as it is.  The payload is unpacked once per user
# and content (worker processes restart; each would leave a copy behind), atomically.
_UNPACK = """\
import sys

def unpack(state):
    import io, os, shutil, stat, tempfile, zipfile
    uid = os.getuid() if hasattr(os, "getuid") else None
    parent = os.path.join(tempfile.gettempdir(), "hn_modulefix-dask-%s" % (uid if uid is not None else "user"))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    info = os.lstat(parent)
    if not stat.S_ISDIR(info.st_mode) or (uid is not None and (info.st_uid != uid or info.st_mode & 0o077)):
        raise PermissionError("hn_modulefix: %s is not a directory private to this user" % parent)
    root = os.path.join(parent, state["digest"])
    if not os.path.isdir(root):
        staging = tempfile.mkdtemp(dir=parent)
        zipfile.ZipFile(io.BytesIO(state["payload"])).extractall(staging)
        try:
            os.rename(staging, root)
        except OSError:  # another process unpacked it first
            shutil.rmtree(staging, ignore_errors=True)
    return root

def restore(state):
    module = sys.modules.get("hn_modulefix._dask")
    if module is None:
        root = unpack(state)
        if "hn_modulefix" not in sys.modules:
            sys.path.insert(0, root + "/lib")
        import hn_modulefix._dask as module
    return module._restore(state, unpack)
"""
_RESTORE = "exec(unpack, space) or space['restore'](state)"

# Tokens of the plugins made in this process: where one is unpickled again (a LocalCluster's
# scheduler runs in the driver, processes=False workers too), the driver's modules are
# already the right ones and nothing is unpacked, installed or exported.
_made_here: set[str] = set()
# What this process's plugin installed: the manifest, and the environment it replaced.
_active: dict[str, Any] = {}


class _Shipped:
    """State and pickling shared by the scheduler and the worker side."""

    name = "hn_modulefix"
    idempotent = False  # registering again replaces the bundle everywhere
    kind = ""

    def __init__(self, state: dict[str, Any], manifest: str) -> None:
        self._state = state
        self.manifest = manifest  # where this process has the bundle

    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, (_RESTORE, {"unpack": _UNPACK, "space": {}, "state": dict(self._state, kind=self.kind)}))

    def _here(self) -> bool:
        return self._state["token"] in _made_here

    def __repr__(self) -> str:
        return "<hn_modulefix Dask %s plugin, bundle %s>" % (self.kind, self.manifest)


def _restore(state: dict[str, Any], unpack: Callable[[dict[str, Any]], str]) -> _Shipped:
    cls = _plugin_classes()[state["kind"]]
    state = {k: v for k, v in state.items() if k != "kind"}
    here = state["token"] in _made_here
    return cls(state, state["manifest"] if here else os.path.join(unpack(state), "bundle", MANIFEST_NAME))


def _drop_stale(manifest: str) -> list[str]:
    """Drop every listed module from sys.modules if any of them was executed from other
    bytes than the listed ones; return the stale ones, as "name (file)"."""
    listed = load(manifest).by_name
    stale = []
    for name, source in sorted(listed.items()):
        module = sys.modules.get(name)
        if module is None:
            continue
        origin = getattr(module, "__file__", None)
        try:
            if not isinstance(origin, str):
                raise OSError("no file")
            read_matching(origin, source.sha256)
        except (OSError, SourceChanged):
            stale.append("%s (%s)" % (name, origin))
    if stale:
        # Fresh modules that imported a stale one hold its old objects: all go together.
        for name in listed:
            sys.modules.pop(name, None)
    return stale


def _activate(manifest: str, export: bool) -> list[str]:
    """Install the finder for `manifest` in this process (replacing an earlier plugin's)
    and, if `export`, give it to the processes this one starts."""
    previous = _active.get("manifest")
    if previous is not None and previous != manifest:
        _deactivate()
    stale = _drop_stale(manifest)
    install(manifest)
    if previous != manifest and export:
        root = os.path.dirname(os.path.dirname(manifest))
        saved = {key: os.environ.get(key) for key in (ENV_MANIFEST, "PYTHONPATH")}
        # hook/ holds only sitecustomize.py, which installs the finder at start and then runs
        # the next sitecustomize on the path; lib/ the package and boot module it imports.
        paths = [os.path.join(root, "hook"), os.path.join(root, "lib")]
        if saved["PYTHONPATH"]:
            paths.append(saved["PYTHONPATH"])
        os.environ[ENV_MANIFEST] = manifest
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
        _active["environ"] = saved
    _active["manifest"] = manifest
    return stale


def _deactivate() -> None:
    manifest = _active.pop("manifest", None)
    if manifest is not None:
        uninstall(manifest)
    for key, value in _active.pop("environ", {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _report_stale(stale: list[str], where: str, log_event: Any) -> None:
    if stale:
        message = ("%s had imported %s from other bytes than the driver's: every listed module was dropped "
                   "from sys.modules, the next task imports the driver's" % (where, ", ".join(stale)))
        _LOG.warning("hn_modulefix: %s", message)
        log_event(EVENT_TOPIC, {"action": "dropped-stale", "where": where, "modules": stale})


_classes: dict[str, type[_Shipped]] = {}


def _plugin_classes() -> dict[str, type[_Shipped]]:
    """The plugin classes, made on first use: they subclass distributed's, an optional
    dependency.  Their instances pickle through `_Shipped.__reduce__`, never by class name."""
    from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

    # Made again if distributed was imported afresh (its base classes are new objects):
    # Dask checks plugins with isinstance against the classes it has now.
    if _classes and issubclass(_classes["scheduler"], SchedulerPlugin):
        return _classes
    from distributed.protocol.pickle import dumps

    class DaskWorkerPlugin(_Shipped, WorkerPlugin):
        kind = "worker"

        def setup(self, worker: Any) -> None:
            if not self._here():
                _report_stale(_activate(self.manifest, export=True), "worker %s" % worker.address,
                              worker.log_event)

        def teardown(self, worker: Any) -> None:
            if not self._here() and _active.get("manifest") == self.manifest:
                _deactivate()

    class DaskPlugin(_Shipped, SchedulerPlugin):
        kind = "scheduler"

        async def start(self, scheduler: Any) -> None:
            if not self._here():
                # The scheduler starts no user processes: nothing to export.
                _report_stale(_activate(self.manifest, export=False), "the scheduler", scheduler.log_event)
            if self.name in scheduler.plugins:
                scheduler.remove_plugin(name=self.name)  # replaced, not a conflict to warn about
            worker_side = DaskWorkerPlugin(self._state, self.manifest)
            responses = await scheduler.register_worker_plugin(comm=None, plugin=dumps(worker_side),  # type: ignore[no-untyped-call]
                                                               name=self.name, idempotent=False)
            failed = ["%s: %s" % (address, response.get("exception_text", response))
                      for address, response in sorted(responses.items()) if response.get("status") != "OK"]
            if failed:
                raise RuntimeError("hn_modulefix: the bundle could not be installed on %d worker%s: %s"
                                   % (len(failed), "" if len(failed) == 1 else "s", "; ".join(failed)))

    _classes.update(scheduler=DaskPlugin, worker=DaskWorkerPlugin)
    return _classes


def dask_plugin(*scripts: PathLike, root: PathLike | None = None, include: Iterable[str] = ()) -> SchedulerPlugin:
    """A Dask plugin that makes `scripts` (default: the calling script) and their local
    imports importable on the scheduler, on every worker and in every process a worker
    starts.  Register it with ``client.register_plugin(plugin)``; registering another one
    replaces it.  `root` (default: the project root found from the script) and `include`
    are as for `ship`.

    Its ``manifest`` is the bundle in this process, removed at exit (for `check`).
    """
    chosen: list[Script] = list(scripts) or calling_scripts(sys._getframe(1).f_globals, "dask_plugin()", root)
    # A worker holding other files at the driver's paths (an older checkout) runs the
    # bytes this driver reads now.
    staging, manifest = driver_snapshot(chosen, root, include, "hn_modulefix-dask-plugin-")
    stage(os.path.join(staging, "lib"), pth=False, sitecustomize=True)
    os.mkdir(os.path.join(staging, "hook"))
    os.rename(os.path.join(staging, "lib", "sitecustomize.py"), os.path.join(staging, "hook", "sitecustomize.py"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for directory, _, files in sorted(os.walk(staging)):
            for file in sorted(files):
                path = os.path.join(directory, file)
                # No timestamps: the same content is the same payload, unpacked once per node.
                entry = zipfile.ZipInfo(os.path.relpath(path, staging).replace(os.sep, "/"))
                entry.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as f:
                    archive.writestr(entry, f.read())
    payload = buffer.getvalue()
    token = uuid.uuid4().hex
    _made_here.add(token)
    state = {"payload": payload, "digest": sha256_bytes(payload), "token": token, "manifest": str(manifest)}
    return _plugin_classes()["scheduler"](state, str(manifest))  # type: ignore[return-value]
