"""Imports jobs/pipeline.py the way `modal run jobs/pipeline.py` does (its directory at
sys.path[0], module `pipeline`) and prints the driver's pid with the UDF's rows.

With WORKERS_MANIFEST set, the driver exports it as HN_MODULEFIX_MANIFEST after its own
import, as `hn_modulefix.ship()` does: only the processes it starts (Daft's UDF workers) get it.
With EDIT_AFTER_IMPORT set to a file, the driver appends a line to that file after its import,
as a user saving an edit while the job runs: Daft starts its UDF workers after that."""

import importlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "jobs"))
pipeline = importlib.import_module("pipeline")
if "WORKERS_MANIFEST" in os.environ:
    os.environ["HN_MODULEFIX_MANIFEST"] = os.environ.pop("WORKERS_MANIFEST")
if "EDIT_AFTER_IMPORT" in os.environ:
    with open(os.environ.pop("EDIT_AFTER_IMPORT"), "a") as f:
        f.write("VERSION = 'edited while the job ran'\n")
print(json.dumps({"driver": os.getpid(), "rows": pipeline.run()}, sort_keys=True))
