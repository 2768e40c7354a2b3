"""Load scenarios/user/jobs.py the way a platform's CLI loads a user script (by file location,
no sys.path change, from inside the CLI's own main), then hand its objects to spawned
workers: argv[1] is 'pool' (multiprocessing) or 'executor' (concurrent.futures), argv[2] the
start method (default 'spawn'; 'forkserver' is the default on Linux from Python 3.14); argv[3],
if 'ship', makes the driver call hn_modulefix.ship() on the user script before it starts them."""

import concurrent.futures
import importlib.util
import multiprocessing
import os
import sys


def load_user_script():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "user", "jobs.py")
    spec = importlib.util.spec_from_file_location("jobs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["jobs"] = module
    spec.loader.exec_module(module)
    return module


def main():
    jobs = load_user_script()
    if sys.argv[3:] == ["ship"]:
        import hn_modulefix

        hn_modulefix.ship(jobs.__file__)
    context = multiprocessing.get_context(sys.argv[2] if len(sys.argv) > 2 else "spawn")
    if sys.argv[1] == "pool":
        with context.Pool(2) as pool:
            results = pool.map_async(jobs.work, jobs.JOBS).get(timeout=8)
    else:
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as executor:
            results = list(executor.map(jobs.work, jobs.JOBS, timeout=8))
    # The results came back from the workers: their classes must be this process's classes.
    assert all(type(r) is jobs.Result and r.job.kind in jobs.Kind for r in results)
    print([(r.job.kind.value, r.job.value, r.answer) for r in results])


if __name__ == "__main__":
    main()
