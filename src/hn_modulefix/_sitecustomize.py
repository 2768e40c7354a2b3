"""hn_modulefix start-up hook for setups that put a directory on PYTHONPATH instead of
installing into site-packages: a Ray runtime_env's py_modules, a read-only image.

Never imported as part of the package: it is copied (or, at the top of the repository,
symlinked) as `sitecustomize.py` next to `_hn_modulefix_boot.py` and the package.
Only the first `sitecustomize` on sys.path runs, so after installing the finder this
one runs the next `sitecustomize` found later on sys.path: Modal's `/pkg/sitecustomize.py`,
say, must still run.  Like the .pth hook it never breaks start-up.
"""

import os
import sys


def _start_hook():
    # type: () -> None
    if not os.environ.get("HN_MODULEFIX_MANIFEST"):
        return
    try:
        import _hn_modulefix_boot
    except Exception as exc:
        sys.stderr.write("hn_modulefix: start-up hook not loaded: %r\n" % (exc,))
    else:
        _hn_modulefix_boot.start()


def _run_next_sitecustomize():
    # type: () -> None
    here = os.path.dirname(os.path.abspath(__file__))
    later = []
    seen_here = False
    for entry in sys.path:
        if seen_here:
            later.append(entry)
        elif os.path.abspath(entry or os.curdir) == here:
            seen_here = True
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("sitecustomize", later)
    if spec is None or spec.loader is None or spec.origin == os.path.abspath(__file__):
        return
    from importlib.util import module_from_spec

    module = module_from_spec(spec)
    # Errors propagate as they would had that file run first: `site` reports them.
    spec.loader.exec_module(module)


_start_hook()
_run_next_sitecustomize()
