"""Modal integration: ``image.pipe(hn_modulefix.image_layer())``.

On the user's machine the layer bundles the calling script with its local closure and
adds to the image, in this order (build steps first, so a mount can come last):

1. the hn_modulefix package and boot module, copied to ``<remote_dir>/lib``;
2. ``PYTHONPATH=<remote_dir>/lib python -m hn_modulefix install-hook``, run by the image's
   own interpreter, which puts the start-up hook into *its* site-packages (Modal's own
   ``/pkg/sitecustomize.py`` shadows any sitecustomize there, but .pth files still run);
3. ``ENV HN_MODULEFIX_MANIFEST=<remote_dir>/bundle/manifest.json``;
4. the bundle at ``<remote_dir>/bundle``: a mount attached at container start by default,
   a build step with ``copy=True`` (for images that chain build steps after the layer).

Wherever the script is imported again — Modal's function runner in the container, or a
worker rebuilding it from the bundle — the layer does no file work and returns the image
unchanged.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from hn_modulefix._finder import from_bundle
from hn_modulefix._hook import INSTALL_COMMAND, stage

if TYPE_CHECKING:
    import modal

ENV_MANIFEST = "HN_MODULEFIX_MANIFEST"
DEFAULT_REMOTE_DIR = "/hn_modulefix"
# Modal reads a script's image through private attributes only; the layer reading in
# `image_layers` is checked against these client versions.
SUPPORTED_MODAL_VERSIONS = ("1.6.",)


def _is_remote() -> bool:
    """True in a Modal container and in every process started from one: there
    `modal.is_local()` can still say True (a Daft UDF worker), the environment cannot."""
    if os.environ.get("MODAL_IS_REMOTE") == "1":
        return True
    modal = sys.modules.get("modal")
    return modal is not None and not modal.is_local()


def image_layer(*, script: str | os.PathLike[str] | None = None, extra: Iterable[str | os.PathLike[str]] = (),
                include: Iterable[str] = (), root: str | os.PathLike[str] | None = None, copy: bool = False,
                remote_dir: str = DEFAULT_REMOTE_DIR) -> Callable[[modal.Image], modal.Image]:
    """A function for ``modal.Image.pipe`` that makes the calling script importable in
    every process of the container.

    script:     the script to ship (default: the file of the module calling this; in a
                notebook, the modules of the project it has imported)
    extra:      more script files to ship with their local closures
    include:    local modules imported in ways the source does not show, by dotted name
    root:       project root the script is importable from as ``scripts.pipeline`` (default: the
                nearest directory above the script with pyproject.toml, setup.py, setup.cfg or .git)
    copy:       ship the bundle as a build step instead of a mount, so build steps may follow
    remote_dir: where hn_modulefix and the bundle go in the image
    """
    caller = sys._getframe(1).f_globals
    if _is_remote() or from_bundle(caller.get("__spec__")):
        return _unchanged
    if not remote_dir.startswith("/"):
        raise ValueError("image_layer(remote_dir=%r): must be an absolute path in the container" % remote_dir)
    from hn_modulefix._bundle import Script, calling_scripts, driver_snapshot

    scripts: list[Script] = [script] if script is not None else calling_scripts(caller, "image_layer(script=)", root)
    # Modal reads the local files when the app runs, after this returns.
    staging, manifest = driver_snapshot([*scripts, *extra], root, include, "hn_modulefix-image-")
    lib = os.path.join(staging, "lib")
    stage(lib)
    remote_dir = remote_dir.rstrip("/")

    def layer(image: modal.Image) -> modal.Image:
        return (
            image.add_local_dir(lib, remote_dir + "/lib", copy=True)
            .run_commands("PYTHONPATH=%s/lib %s" % (remote_dir, INSTALL_COMMAND))
            .env({ENV_MANIFEST: remote_dir + "/bundle/manifest.json"})
            .add_local_dir(str(manifest.parent), remote_dir + "/bundle", copy=copy)
        )

    return layer


def _unchanged(image: modal.Image) -> modal.Image:
    return image


class Layer:
    """One planned layer of a Modal image, read offline."""

    __slots__ = ("kind", "commands", "files")

    def __init__(self, kind: str, commands: Sequence[str], files: Sequence[tuple[str, str]]) -> None:
        self.kind = kind  # "build" (a Dockerfile step) or "mount" (attached at container start)
        self.commands = list(commands)
        self.files = list(files)  # (local path, absolute path in the container)

    def __repr__(self) -> str:
        return "Layer(%r, %r, %d files)" % (self.kind, self.commands, len(self.files))


def _closure(function: Any) -> dict[str, Any]:
    if function is None or function.__closure__ is None:
        return {}
    return {name: cell.cell_contents for name, cell in zip(function.__code__.co_freevars, function.__closure__)}


def _mount_files(mount: Any) -> list[tuple[str, str]]:
    files: list[tuple[str, str]] = []
    for entry in mount.entries:
        files.extend((str(local), str(remote)) for local, remote in entry.get_files_to_upload())
    return sorted(files, key=lambda pair: pair[1])


def newest_builder_version() -> str:
    """The newest image builder version the installed modal client knows (its
    `ImageBuilderVersion` literal lists them, with "PREVIEW")."""
    from typing import get_args

    from modal._image import ImageBuilderVersion

    versions: list[str] = [version for version in get_args(ImageBuilderVersion) if version[:1].isdigit()]
    return max(versions)  # "YYYY.MM": in order as strings


def image_layers(image: modal.Image, builder_version: str | None = None) -> list[Layer]:
    """The planned layers of `image`, base first, read offline from the closures Modal
    keeps them in (Modal exposes no public way: this depends on the client version).

    Modal builds with the builder version of the workspace, which only its server knows;
    offline the newest one the client knows stands in unless `builder_version` is given."""
    import modal as modal_module
    from modal._utils.async_utils import synchronizer

    if builder_version is None:
        builder_version = newest_builder_version()

    if not modal_module.__version__.startswith(SUPPORTED_MODAL_VERSIONS):
        raise RuntimeError("reading image layers offline is implemented for modal %s, not %s"
                           % (" ".join(v + "x" for v in SUPPORTED_MODAL_VERSIONS), modal_module.__version__))
    layers = []
    current = synchronizer._translate_in(image)  # type: ignore[no-untyped-call]
    while current is not None:
        variables = _closure(current._load)
        if "dockerfile_function" in variables:
            spec = variables["dockerfile_function"](builder_version)
            context = variables.get("context_mount_function")
            mount = context(builder_version) if context else None
            layers.append(Layer("build", spec.commands, _mount_files(mount) if mount is not None else []))
            bases = variables["base_images"]
            current = next(iter(bases.values()), None)
        elif "mount" in variables and "base_image" in variables:
            layers.append(Layer("mount", [], _mount_files(variables["mount"])))
            current = variables["base_image"]
        else:
            raise RuntimeError("cannot read image layer %r offline" % (current._rep,))
    return layers[::-1]
