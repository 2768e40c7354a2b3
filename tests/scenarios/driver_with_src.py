"""Run a script as __main__ with hn_modulefix's source importable in this process only.

    driver_with_src.py SRC SCRIPT [ARGS...]

For an interpreter without hn_modulefix installed: the driver can import it, while the
processes it starts (Ray workers) cannot, unless something ships it to them.  Nothing
reaches them from here: no environment variable changes, and SRC is neither the script's
directory nor the working directory (the two paths Ray adds to its workers' sys.path).
"""

import runpy
import sys

sys.path.insert(0, sys.argv.pop(1))
del sys.argv[0]
runpy.run_path(sys.argv[0], run_name="__main__")
