"""Load scenarios/user/jobs.py the way a platform's CLI loads a user script, from inside the
CLI's own main, then hand its objects to worker processes and print their results and pids.

    pool_driver.py KIND [METHOD] [--modal] [--ship] [--early]

KIND is 'pool' (multiprocessing.Pool), 'executor' (concurrent.futures.ProcessPoolExecutor)
or 'loky' (joblib.Parallel on loky's reusable executor, joblib's default); METHOD the start
method of pool and executor (default 'spawn'; 'forkserver' is Linux's default from 3.14).
The script is loaded by file location with no sys.path change; --modal as `modal run`
loads it, its directory first on sys.path (which spawned children receive). --ship calls
hn_modulefix.ship(script) once it is loaded; --early (loky) runs a call first, before the
script is loaded, so that the reusable executor's workers are already running.
"""

import concurrent.futures
import importlib.util
import json
import multiprocessing
import os
import sys


def load_user_script(like_modal):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "user", "jobs.py")
    if like_modal:
        sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("jobs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["jobs"] = module
    spec.loader.exec_module(module)
    return module


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    options = {a for a in sys.argv[1:] if a.startswith("--")}
    kind, method = args[0], args[1] if len(args) > 1 else "spawn"
    early = []
    if "--early" in options:
        from joblib import Parallel, delayed

        early = sorted(set(Parallel(n_jobs=2)(delayed(os.getpid)() for _ in range(4))))
    jobs = load_user_script("--modal" in options)
    if "--ship" in options:
        import hn_modulefix

        hn_modulefix.ship(jobs.__file__)
    context = multiprocessing.get_context(method)
    if kind == "pool":
        with context.Pool(2) as pool:
            results = pool.map_async(jobs.work, jobs.JOBS).get(timeout=8)
    elif kind == "executor":
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as executor:
            results = list(executor.map(jobs.work, jobs.JOBS, timeout=8))
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=2, timeout=8)(delayed(jobs.work)(job) for job in jobs.JOBS)
    # The results came back from the workers: their classes must be this process's classes.
    assert all(type(r) is jobs.Result and r.job.kind in jobs.Kind for r in results)
    print([(r.job.kind.value, r.job.value, r.answer) for r in results])
    print(json.dumps({"driver": os.getpid(), "workers": sorted({r.pid for r in results}), "early": early}))


if __name__ == "__main__":
    main()
