"""What each process of `dtrain.multiprocessing.spawn` runs: ``python -m dtrain.multiprocessing._child``.

Started by the launcher's rank shim, so RANK is set and the job's directory is DTRAIN_JOB_DIR. Rebuilds the
caller's main module as multiprocessing's spawn does, unpickles (fn, args) and calls ``fn(RANK, *args)``. An
exception from `fn` is pickled (as its formatted traceback) for the caller and the process exits 1, as under
torch's spawn.
"""
import multiprocessing.process
import multiprocessing.spawn
import os
import pickle
import sys
import traceback


def _write(path, data):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    index = int(os.environ["RANK"])
    workdir = os.environ["DTRAIN_JOB_DIR"]
    _write(os.path.join(workdir, f"pid{index}"), str(os.getpid()).encode())
    # failing to rebuild the caller's main module or to unpickle (fn, args) ends the process with code 1 and
    # the traceback on stderr, as in multiprocessing's own children; only what `fn` raises goes to the caller
    with open(os.path.join(workdir, "payload"), "rb") as f:
        preparation = pickle.load(f)
        by_value = pickle.load(f)
        # as in multiprocessing's own children: a main module that calls spawn() without its __main__
        # guard gets multiprocessing's RuntimeError, instead of starting processes without end
        me = multiprocessing.process.current_process()
        me._inheriting = True
        try:
            multiprocessing.spawn.prepare(preparation)
        finally:
            me._inheriting = False
        fn, args = pickle.load(f) if not by_value else __import__("cloudpickle").load(f)
    try:
        fn(index, *args)
    except KeyboardInterrupt:
        pass  # stopped by the caller
    except Exception:
        _write(os.path.join(workdir, f"error{index}"), pickle.dumps(traceback.format_exc()))
        sys.exit(1)


if __name__ == "__main__":
    main()
