"""Imports jobs/pipeline.py the way `modal run jobs/pipeline.py` does (its directory at
sys.path[0], module `pipeline`) and prints the driver's pid with the UDF's rows."""

import importlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "jobs"))
pipeline = importlib.import_module("pipeline")
print(json.dumps({"driver": os.getpid(), "rows": pipeline.run()}, sort_keys=True))
