"""Objects defined in a script unpickle in every worker process, wherever the script was
imported from.

The start-up hook imports this package in every interpreter where a manifest is active,
so nothing is imported here eagerly: each public name loads its module on first use.
"""

__version__ = "0.3.1"

__all__ = [
    "BundleError",
    "CheckError",
    "CheckResult",
    "ManifestError",
    "ModuleCheck",
    "__version__",
    "bundle",
    "check",
    "dask_plugin",
    "doctor_report",
    "emulate",
    "image_layer",
    "install",
    "ray_runtime_env",
    "ship",
    "uninstall",
]

_LAZY = {
    "BundleError": "hn_modulefix._bundle",
    "bundle": "hn_modulefix._bundle",
    "CheckError": "hn_modulefix._check",
    "CheckResult": "hn_modulefix._check",
    "ModuleCheck": "hn_modulefix._check",
    "check": "hn_modulefix._check",
    "dask_plugin": "hn_modulefix._dask",
    "doctor_report": "hn_modulefix._doctor",
    "ManifestError": "hn_modulefix._manifest",
    "install": "hn_modulefix._finder",
    "uninstall": "hn_modulefix._finder",
    "emulate": "hn_modulefix._emulate",
    "image_layer": "hn_modulefix._modal",
    "ray_runtime_env": "hn_modulefix._ray",
    "ship": "hn_modulefix._ship",
}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hn_modulefix._bundle import BundleError, bundle
    from hn_modulefix._check import CheckError, CheckResult, ModuleCheck, check
    from hn_modulefix._dask import dask_plugin
    from hn_modulefix._doctor import doctor_report
    from hn_modulefix._emulate import emulate
    from hn_modulefix._finder import install, uninstall
    from hn_modulefix._manifest import ManifestError
    from hn_modulefix._modal import image_layer
    from hn_modulefix._ray import ray_runtime_env
    from hn_modulefix._ship import ship


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError("module 'hn_modulefix' has no attribute %r" % (name,))
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> "list[str]":
    return sorted(set(globals()) | set(__all__))
