"""Runs a notebook cell as a job's script. Standard library only: the cell package carries a copy.

The package (see notebook/packaging.py) holds the cell's source, the pushed variables (pickled) and
a manifest naming the variables to pull. This runner, started as `python _batchai_cell.py` in the
task's working directory on every rank, makes the pushed variables globals, runs the cell as
`__main__`, and on rank 0 pickles the pulled globals into the BATCHAI_RESULT output directory.
"""

from __future__ import annotations

import json
import linecache
import os
import pickle
import sys
import traceback

RUNNER_NAME = "_batchai_cell.py"
SOURCE_NAME = "_batchai_cell_source.py"
PUSH_NAME = "_batchai_push.pkl"
MANIFEST_NAME = "_batchai_manifest.json"
RESULT_OUTPUT_ID = "BATCHAI_RESULT"
RESULT_NAME = "pulled.pkl"
_RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "AZ_BATCHAI_TASK_INDEX")
CELL_FILENAME = "<cell>"
# The code of a cell starts under its `%%batchai_job` line: its first line is the cell's line 2.
CELL_FIRST_LINE = 2


def _numbered(source: str) -> str:
    return "\n" * (CELL_FIRST_LINE - 1) + source


def compile_cell(source: str):
    """The cell's code object, with line numbers as the notebook shows them (SyntaxError as Python raises it)."""
    return compile(_numbered(source), CELL_FILENAME, "exec")


def run_cell(source: str, namespace: dict) -> None:
    """Runs the cell; an exception it raises is printed from the cell's own frame on (this runner's frames
    are not the user's) and ends the process with exit code 1, as an uncaught exception would."""
    code = compile_cell(source)
    lines = _numbered(source).splitlines(True)
    linecache.cache[CELL_FILENAME] = (len(source), None, lines, CELL_FILENAME)  # tracebacks quote the lines
    try:
        exec(code, namespace)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as failure:
        frames = failure.__traceback__
        while frames is not None and frames.tb_frame.f_code.co_filename != CELL_FILENAME:
            frames = frames.tb_next
        traceback.print_exception(type(failure), failure, frames or failure.__traceback__)
        sys.stderr.flush()
        sys.exit(1)


def task_rank() -> int:
    """This process's rank in its job (0 when the job has one process)."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def _pull(namespace: dict, names: list[str]) -> dict:
    values, errors = {}, {}
    for name in names:
        if name not in namespace:
            errors[name] = f"the job's script defines no global '{name}'"
            continue
        try:
            pickle.dumps(namespace[name])
            values[name] = namespace[name]
        except Exception as failure:  # what cannot be pickled is reported, the rest still comes back
            errors[name] = f"cannot be pickled ({type(failure).__name__}: {failure})"
    return {"values": values, "errors": errors}


def _run_params() -> dict:
    """The job's parameters ($BATCHAI_PARAMS, e.g. a sweep trial's sampled values) that are Python names:
    the cell sees them as globals, over pushed variables of the same name."""
    text = os.environ.get("BATCHAI_PARAMS", "")
    values = json.loads(text) if text else {}
    return {name: value for name, value in values.items() if name.isidentifier()}


def main(directory: str = ".") -> None:
    with open(os.path.join(directory, MANIFEST_NAME)) as handle:
        manifest = json.load(handle)
    namespace = {"__name__": "__main__", "__file__": os.path.abspath(os.path.join(directory, SOURCE_NAME))}
    push_path = os.path.join(directory, PUSH_NAME)
    if os.path.exists(push_path):
        with open(push_path, "rb") as handle:
            namespace.update(pickle.load(handle))
    namespace.update(_run_params())
    with open(os.path.join(directory, SOURCE_NAME)) as handle:
        source = handle.read()
    sys.argv = [SOURCE_NAME]
    run_cell(source, namespace)
    result_dir = os.environ.get(f"AZ_BATCHAI_OUTPUT_{RESULT_OUTPUT_ID}")
    if manifest.get("pull") and task_rank() == 0 and result_dir:
        os.makedirs(result_dir, exist_ok=True)
        pulled = _pull(namespace, manifest["pull"])
        with open(os.path.join(result_dir, RESULT_NAME + ".tmp"), "wb") as handle:
            pickle.dump(pulled, handle)
        os.replace(os.path.join(result_dir, RESULT_NAME + ".tmp"), os.path.join(result_dir, RESULT_NAME))
        for name, error in pulled["errors"].items():
            print(f"batchai: --pull {name}: {error}", file=sys.stderr)


def _finish() -> None:
    """Ends the process without interpreter teardown, once the cell has run and its results are saved:
    libraries' threads (gloo, MPI) can abort a normal teardown and fail a job that did its work."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(os.path.dirname(os.path.abspath(__file__)))
    _finish()
