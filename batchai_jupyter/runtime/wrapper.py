"""The job wrapper: runs ONE task on a node and leaves its state on disk.

Started detached (its own session, so a dying service does not take it along) as

    python -S wrapper.py TASK_DIR
    python -S wrapper.py --kill TASK_DIR SIGNAL     (what `kill_task_processes` does, on the node)

or, where its folder can hold its compiled form, as `launch_argv` spells it: `python -I -S -c BOOTSTRAP
TASK_DIR`, which imports this file from its cached .pyc instead of compiling it again for every task.

It is deliberately stdlib-only and self-contained: backends copy this single file to a node and
run it with whatever Python is there. TASK_DIR/task.json says what to run:

    {"command": "shell command line", "env": {...}, "cwd": "...",
     "stdout": "/abs/stdout.txt", "stderr": "/abs/stderr.txt", "heartbeat_seconds": 2,
     "inherit_env": false, "sandbox": ["bwrap", ..., "--"]}

(`inherit_env`: the task's env goes on top of the wrapper's own instead of replacing it. `sandbox`: the
command line the task's shell is started under; the wrapper itself stays outside, to write its records.)

and the wrapper records, beside it:

    pid        the wrapper's pid, which is also the task's process-group id (the claimed task file,
               overwritten and renamed)
    heartbeat  touched every heartbeat_seconds while the task runs; it holds the room kept for the exit
               record on a full disk, and is emptied when the task ends
    exit       {"exit_code": N, "ended": unix time}, written atomically when the task ends; a wrapper that is
               its task's subreaper (forked by the launcher) adds "left": whether a process of the task
               still runs, so a kill after the end has nothing to look for when it is false

A kill first writes `kill-requested` (the signal number) there: a task whose pid was not written yet when
it was killed, so that there was nothing to signal, reads it just before it starts and ends with it.

task.json holds secret values, so the wrapper deletes it as soon as it has read it.

The task runs with BATCHAI_TASK_DIR=TASK_DIR in its environment. Its processes inherit it, also
those that leave the task's process group or session (`setsid`, daemons), so the task can be
killed whole: its group while the wrapper leads it, and every process that carries the marker.

Every job pays for this file's start-up, so it imports almost nothing: no `subprocess` (the task
is started with fork/execve, or posix_spawn where the launcher forked the wrapper, and waited for with
waitpid, which is what subprocess does on POSIX),
not `signal` (its enum classes cost more than the rest of the start-up: the C module `_signal`
has the same functions and numbers) and, where CPython's C scanner is there, not `json` either (its
`re` import alone costs more than the rest of the wrapper's own work). No `from __future__` import
either, so annotations stay ones that old Pythons on remote nodes evaluate.
"""

import errno
import os
import sys
import time

try:
    import _signal as signal  # CPython: signal's functions and numbers without its enum classes
except ImportError:  # another Python
    import signal  # type: ignore[no-redef]

WRAPPER_VERSION = "1"
TASK_MARKER = "BATCHAI_TASK_DIR"
# Killing a task repeats its scan while processes keep appearing (a fork racing the kill).
KILL_ROUNDS = 20
# Written by a kill into the task's directory: the signal a task not yet started must end with.
KILL_REQUESTED = "kill-requested"
TASK_CLAIMED = "task.claimed"  # task.json once a wrapper took the task up, until its pid is written
LOCK_WAIT_TOLD_AFTER_SECONDS = 2.0


def _parse_json(text: str):
    """json.loads(text) for the service's task file, without importing json when it can."""
    try:
        from _json import make_scanner  # CPython's C scanner: json.loads without `re`

        class _Options:  # what json.JSONDecoder hands the scanner
            strict, object_hook, object_pairs_hook, parse_constant = True, None, None, None
            parse_float, parse_int = float, int
            memo: dict = {}

        text = text.strip()
        value, end = make_scanner(_Options())(text, 0)
        if end == len(text):
            return value
    except Exception:  # not CPython, or a document the fast path does not take: the real thing
        pass
    import json

    return json.loads(text)


def _write_atomically(path: str, text: str) -> None:
    """Readers see the whole text or none. Not fsynced, not even the exit record: a service restart
    needs none (a file in the page cache is there for the next process whatever happened to the last),
    and the store's own commits are not synced either (WAL, synchronous=NORMAL), so after a machine's
    crash the service may read an older state whatever the task left; an fsync there put 5 to 20 ms
    of a busy disk on every task's critical path (benchmarks/README.md, throughput)."""
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


EXIT_RESERVE = 4096  # bytes kept for the exit record while the task may fill the disk


def _start_heartbeat(heartbeat: str) -> None:
    """Makes the heartbeat file, EXIT_RESERVE bytes long: the room for the exit record, taken before the
    task runs, so a task that fills the disk still ends with its own exit code (and the word that the disk
    was full), not as a lost task. The heartbeat's content is read by no one (its time is what counts), so
    it holds the room: one file made per task instead of two."""
    try:
        with open(heartbeat, "wb") as handle:
            handle.write(b" " * EXIT_RESERVE)
    except OSError:  # already full: the record is tried the usual way at the end
        _touch(heartbeat)


def _write_exit_record(task_dir: str, fields: str) -> None:
    """Writes {fields} as the exit record; on a full disk, into the room the heartbeat file holds, saying
    where it was full."""
    path = os.path.join(task_dir, "exit")
    reserve = os.path.join(task_dir, "heartbeat")
    try:
        _write_atomically(path, "{" + fields + "}")
    except OSError as failure:
        if failure.errno not in (errno.ENOSPC, errno.EDQUOT) or _size(reserve) < EXIT_RESERVE:
            raise
        no_space = task_dir.replace("\\", "\\\\").replace('"', '\\"')
        record = ("{" + fields + f', "no_space": "{no_space}"' + "}").encode()[:EXIT_RESERVE]
        with open(reserve, "r+b") as handle:  # overwrites bytes already allocated: needs no free block
            handle.write(record)
            handle.truncate(len(record))
        os.replace(reserve, path)
        return
    try:  # the room is given back (before the file system even allocated it, most times)
        os.truncate(reserve, 0)
    except OSError:
        pass


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _touch(path: str) -> None:
    with open(path, "a"):
        pass
    os.utime(path, None)


def _exit_code(returncode: int) -> int:
    # A task killed by a signal reports 128 + signal number, as a shell would.
    return 128 - returncode if returncode < 0 else returncode


def run(task_dir: str, subreaper: bool = False, spawn: bool = False) -> int:
    """Runs the task of `task_dir`. `subreaper`: this process was made its descendants' subreaper
    (PR_SET_CHILD_SUBREAPER), so it can tell in its exit record whether anything of the task is left
    (`"left": false` spares the service a search of every process for the task's marker). `spawn`: start
    the task with posix_spawn (_spawn_task), for a wrapper whose only inheritable descriptors are 0 to 2."""
    # Taken up by renaming it: of two wrappers handed the same task (a restarted service hands over
    # again a task whose first hand-over it cannot know of), one gets it and the other ends at once.
    claimed = os.path.join(task_dir, TASK_CLAIMED)
    try:
        os.rename(os.path.join(task_dir, "task.json"), claimed)
    except FileNotFoundError:
        return 127
    with open(claimed, "r+") as handle:
        task = _parse_json(handle.read())
        # The claimed file becomes the pid file (its secret values overwritten, then renamed: readers see
        # the whole pid or none), and one of the two always tells that the task was taken up.
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
    os.replace(claimed, os.path.join(task_dir, "pid"))
    heartbeat = os.path.join(task_dir, "heartbeat")
    _start_heartbeat(heartbeat)

    # The service terminates a task by signalling its process group; the wrapper stays to
    # record the exit code of the command it runs.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    for name in ("stdout", "stderr"):
        os.makedirs(os.path.dirname(task[name]), exist_ok=True)
    with open(task["stdout"], "ab", buffering=0) as out, open(task["stderr"], "ab", buffering=0) as err:
        killed = _hold_lock(task.get("lock"), task_dir, heartbeat, err) if task.get("lock") else None
        if killed is not None:
            code = 128 + killed
            _write_exit_record(task_dir, f'"exit_code": {code:d}, "ended": {time.time()!r}')
            return code
        try:
            child = _spawn_task(task, task_dir, out.fileno(), err.fileno()) if spawn else os.fork()
        except _KilledBeforeStart as killed_first:
            code = 128 + killed_first.signal_number
        except OSError as error:
            err.write(f"batchai: cannot start the task: {error}\n".encode())
            code = 127
        else:
            if child == 0:  # the task's process: never returns from here
                _exec_task(task, task_dir, out.fileno(), err.fileno())
            # The heartbeat is touched from SIGALRM while waitpid blocks (PEP 475 resumes the wait).
            interval = float(task.get("heartbeat_seconds", 2))
            signal.signal(signal.SIGALRM, lambda *_: _touch(heartbeat))
            signal.setitimer(signal.ITIMER_REAL, interval, interval)
            status = _wait_for_task(child, subreaper)
            if subreaper and task.get("sandbox"):
                _reap_sandbox()
            signal.setitimer(signal.ITIMER_REAL, 0)
            code = _exit_code(os.waitstatus_to_exitcode(status))
    # json.dumps's own format, without importing json.
    left = "" if not subreaper else ', "left": true' if _descendants_alive() else ', "left": false'
    _write_exit_record(task_dir, f'"exit_code": {code:d}, "ended": {time.time()!r}{left}')
    return code


def _wait_for_task(child: int, subreaper: bool) -> int:
    """The task's wait status. A subreaper also reaps, as they end, the orphans the task's processes
    leave to it, so none stays a zombie while the task runs."""
    if not subreaper:
        return os.waitpid(child, 0)[1]
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            return status


def _reap_sandbox() -> None:
    """Waits until what is left of a sandbox whose bwrap ended has gone: its PID namespace, killed whole
    (bwrap's init dies with it, and the kernel kills the rest), left to this subreaper on the way. A task
    is recorded as ended only once nothing of it runs."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _descendants_alive() -> bool:
    """Whether a process the task started still runs, for a wrapper that is its subreaper: every
    descendant that outlived its parent became the wrapper's child, so none is left once it has no
    children (the zombies of those that ended are reaped here)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _hold_lock(path: str, task_dir: str, heartbeat: str, err) -> int | None:
    """Waits for the exclusive lock at `path` and holds it until the wrapper ends (the task closes its copy of
    the descriptor); None once held, or the signal of a kill that came while waiting."""
    import fcntl

    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    told = False
    # A short wait is said nowhere: a note in every quick preparation's log would be noise (a tab of its own
    # in the monitors); a long one is explained.
    tell_at = time.monotonic() + LOCK_WAIT_TOLD_AFTER_SECONDS
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        requested = _read(os.path.join(task_dir, KILL_REQUESTED)).strip()
        if requested.isdigit():
            return int(requested)
        if not told and time.monotonic() >= tell_at:
            err.write(b"batchai: waiting for another node's job preparation on this machine to end\n")
            told = True
        _touch(heartbeat)
        time.sleep(0.2)


def _exec_task(task: dict, task_dir: str, stdout: int, stderr: int) -> None:
    """In the forked child: what subprocess.Popen(["/bin/bash", "-c", command], cwd=..., env=...,
    stdin=DEVNULL, stdout=..., stderr=...) does before and at exec. A failure to start is told
    on the task's stderr and ends the child with 127, as a shell does."""
    try:
        # From here a terminate takes the signal's default action; one asked for before it could reach
        # this process (the service found no pid to signal yet) was recorded, and ends the task now.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        requested = _read(os.path.join(task_dir, KILL_REQUESTED)).strip()
        if requested.isdigit():
            os.kill(os.getpid(), int(requested))
        # Sources are moved above 2 first, so no dup2 onto 0..2 can clobber one of them.
        sources = [_above_stderr(os.open(os.devnull, os.O_RDWR)), _above_stderr(stdout), _above_stderr(stderr)]
        for target, source in enumerate(sources):
            os.dup2(source, target)
        _close_fds_above_stderr()
        if task.get("cwd"):
            os.chdir(task["cwd"])
        for name in TASK_DEFAULT_SIGNALS[2:]:  # Python ignores these; the task must not
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        # inherit_env: on top of the node's own environment (remote backends), else the whole of it.
        env = {**os.environ, **task["env"]} if task.get("inherit_env") else dict(task["env"])
        env[TASK_MARKER] = task_dir
        _make_output_directories(env)
        # "sandbox": the command line (bwrap's) that the task's shell runs inside, made by the backend.
        argv = [*task.get("sandbox", ()), "/bin/bash", "-c", task["command"]]
        os.execve(argv[0], argv, env)
    except BaseException as error:
        try:
            os.write(2, f"batchai: cannot start the task: {error}\n".encode())
        finally:
            os._exit(127)


# What _exec_task sets back to the default action before the task starts (Python ignores the last three).
TASK_DEFAULT_SIGNALS = ("SIGTERM", "SIGINT", "SIGPIPE", "SIGXFZ", "SIGXFSZ")


def _spawn_task(task: dict, task_dir: str, stdout: int, stderr: int) -> int:
    """What _exec_task does, with posix_spawn instead of fork + exec: glibc starts the task from a child
    that shares this process's memory (vfork), where a fork copies the whole interpreter's page tables
    and its pages then fault in one by one (about 1 ms of a task's start here). Only for a wrapper forked
    by the launcher: every other descriptor it holds is close-on-exec (the launcher was started with
    close_fds, and Python opens all its files so), so none needs closing. The task's pid; OSError when it
    cannot start."""
    requested = _read(os.path.join(task_dir, KILL_REQUESTED)).strip()
    if requested.isdigit():  # a kill that came before any pid could be signalled: the task ends with it
        raise _KilledBeforeStart(int(requested))
    env = {**os.environ, **task["env"]} if task.get("inherit_env") else dict(task["env"])
    env[TASK_MARKER] = task_dir
    _make_output_directories(env)
    argv = [*task.get("sandbox", ()), "/bin/bash", "-c", task["command"]]
    null = os.open(os.devnull, os.O_RDWR)
    cwd = task.get("cwd") if not task.get("sandbox") else None  # bwrap's own --chdir goes there in a sandbox
    try:
        if cwd:
            os.chdir(cwd)
        child = os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate((null, stdout, stderr))],
            setsigdef=[getattr(signal, name) for name in TASK_DEFAULT_SIGNALS if hasattr(signal, name)],
        )
    finally:
        os.close(null)
        if cwd:
            os.chdir(task_dir)  # how _task_leader knows this wrapper
    # A kill that wrote its request after the check above may have signalled the group before the task
    # was in it: it is seen here (the request is written before any signal is sent).
    requested = _read(os.path.join(task_dir, KILL_REQUESTED)).strip()
    if requested.isdigit():
        os.kill(child, int(requested))
    return child


class _KilledBeforeStart(OSError):
    """A kill asked for before the task could start: the task is not started and ends with that signal."""

    def __init__(self, signal_number: int):
        super().__init__(f"killed before it started (signal {signal_number})")
        self.signal_number = signal_number


def _make_output_directories(env: dict) -> None:
    """Batch AI made every output directory before the task started; one under a mount root of a node
    that is another machine exists only there, so it is made here."""
    for name, value in env.items():
        if name.startswith("AZ_BATCHAI_OUTPUT_") and value.startswith("/"):
            try:
                os.makedirs(value, exist_ok=True)
            except OSError:
                pass  # the task says what is wrong with its directory when it writes there


def _above_stderr(descriptor: int) -> int:
    while descriptor <= 2:
        descriptor = os.dup(descriptor)
    return descriptor


def _close_fds_above_stderr() -> None:
    try:
        descriptors = [int(name) for name in os.listdir("/dev/fd")]
    except (OSError, ValueError):
        descriptors = range(3, 1024)
    for descriptor in descriptors:
        if descriptor > 2:
            try:
                os.close(descriptor)
            except OSError:
                pass


# -- killing a task whole -------------------------------------------------------------------------


def _read(path: str) -> bytes:
    """The file's bytes, b"" when it is gone or not ours to read. Plain os calls, without io's objects: a
    kill reads every process's environ, so this runs hundreds of times for each task that ends."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return b""
    chunks = []
    try:
        while True:
            chunk = os.read(descriptor, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:
        return b""
    finally:
        os.close(descriptor)


def _task_leader(task_dir: str):
    """The task's wrapper pid (its process group and session id) while that very wrapper runs:
    once it is gone, the number may lead another task's group."""
    text = _read(os.path.join(task_dir, "pid")).strip()
    if not text.isdigit():
        return None
    # The wrapper of this task, not a process that got its pid later: one started on its own has the
    # task dir as argv[-1]; one the launcher forked works in the task dir (see serve_launches).
    if _read(f"/proc/{int(text)}/cmdline").split(b"\0")[-2:-1] == [task_dir.encode()]:
        return int(text)
    try:
        if os.readlink(f"/proc/{int(text)}/cwd") == os.path.realpath(task_dir):
            return int(text)
    except OSError:  # gone, or not ours
        pass
    return None


def marked_processes(task_dir: str) -> list:
    """Processes that carry the task's marker, wherever they went (another group, a new session)."""
    marker = f"{TASK_MARKER}={task_dir}".encode()
    mine = os.getpid()
    return [
        int(name)
        for name in os.listdir("/proc")
        if name.isdigit() and int(name) != mine and marker in _read(f"/proc/{name}/environ").split(b"\0")
    ]


def _left_nothing(task_dir: str) -> bool:
    """The task ended and its wrapper, its subreaper, saw no process of it left: none can carry its
    marker or be in its group any more."""
    record = _read(os.path.join(task_dir, "exit")).decode(errors="replace")
    try:
        return bool(record) and _parse_json(record).get("left") is False
    except ValueError:
        return False


def kill_task_processes(task_dir: str, signal_number: int) -> None:
    """Sends `signal_number` to the task whole: its process group while its wrapper leads it, and
    every process carrying its marker; with SIGKILL, again while new marked ones appear."""
    if _left_nothing(task_dir):
        return
    signalled = set()
    try:  # recorded first: a task whose pid is not written yet reads it before it starts (_exec_task)
        with open(os.path.join(task_dir, KILL_REQUESTED), "w") as handle:
            handle.write(str(int(signal_number)))
    except OSError:  # the task's directory is gone: nothing of it can start any more
        pass
    leader = _task_leader(task_dir)
    if leader is not None:
        try:
            os.killpg(leader, signal_number)
        except (ProcessLookupError, PermissionError):
            pass
    for _ in range(KILL_ROUNDS if signal_number == signal.SIGKILL else 1):
        pids = [pid for pid in marked_processes(task_dir) if pid not in signalled]
        for pid in pids:
            try:
                os.kill(pid, signal_number)
            except (ProcessLookupError, PermissionError):
                pass
            signalled.add(pid)
        if not pids:
            break


# -- starting it ----------------------------------------------------------------------------------

# Imports this file by its own name from its folder (so from its cached .pyc) and runs main().
_BOOTSTRAP = "import sys;sys.path.insert(0,{folder!r});__import__({module!r}).main()"


def launch_argv(python: str, task_dir: str, path: str = __file__) -> list:
    """The command line that runs the wrapper at `path` for `task_dir` (or "--launcher"): `-I` keeps the
    environment's PYTHON* settings from changing it, `-S` skips site, and the bootstrap imports the
    compiled file."""
    folder, name = os.path.split(os.path.abspath(path))
    bootstrap = _BOOTSTRAP.format(folder=folder, module=name[: -len(".py")])
    return [python, "-I", "-S", "-c", bootstrap, task_dir]


def serve_launches() -> None:
    """`--launcher`: one started wrapper per task directory read from stdin (a line each), forked from
    this process instead of started anew: no interpreter start-up per task (about 1 ms instead of
    about 9), and the forked wrappers share this process's memory pages until they write to them
    (about 1.5 MB PSS each instead of about 3). Each forked wrapper is what a wrapper started on its
    own is: it leads its own session, records pid, heartbeat and exit code on disk, and outlives
    this launcher and the service. The launcher writes the task directory of each wrapper it reaps
    to stdout (so the service learns at once that the task ended) and ends at the end of stdin,
    leaving running wrappers to go on alone."""
    import _json  # noqa: F401  (imported once here, already there in every forked wrapper)

    become_subreaper = _subreaper_call()
    started = {}  # pid: task dir
    reaped_early = set()  # pids reaped (SIGCHLD) between their fork and their entry in `started`

    def report(task_dir: str) -> None:
        try:
            os.write(1, task_dir.encode() + b"\n")
        except OSError:  # the service is gone: the wrapper's own records are what counts
            pass

    def reap(*_) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in started:
                report(started.pop(pid))
            else:
                reaped_early.add(pid)

    signal.signal(signal.SIGCHLD, reap)
    for line in sys.stdin.buffer:
        task_dir = line.decode().rstrip("\n")
        if not task_dir:
            continue
        try:
            pid = os.fork()
        except OSError:  # no pid will be written: the service finds the task lost after its grace time
            _remove(os.path.join(task_dir, "task.json"))  # it holds secret values
            continue
        if pid == 0:
            _become_wrapper(task_dir, become_subreaper)
        started[pid] = task_dir
        if pid in reaped_early:
            reaped_early.discard(pid)
            report(started.pop(pid))


def _subreaper_call():
    """A function that makes the calling process the subreaper of its descendants (True once it is),
    or None where there is none (not Linux, no ctypes). Prepared once in the launcher: its forked
    wrappers call it without importing ctypes each."""
    PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _become_wrapper(task_dir: str, become_subreaper=None) -> None:
    """In a child of the launcher: leave the launcher's signals, streams and session, and run the
    task as a wrapper started on its own would (a failure before the task starts, too, leaves no exit
    record: the service finds the task lost)."""
    code = 127
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the wrapper waits for its task itself
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)
        os.chdir(task_dir)  # how _task_leader knows it
        spawn = hasattr(os, "posix_spawn")
        code = run(task_dir, subreaper=bool(become_subreaper and become_subreaper()), spawn=spawn)
    finally:
        os._exit(code)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def main() -> None:
    if sys.argv[1] == "--kill":
        kill_task_processes(sys.argv[2], getattr(signal, "SIG" + sys.argv[3]))
    elif sys.argv[1] == "--launcher":
        serve_launches()
    else:
        run(sys.argv[1])


if __name__ == "__main__":
    main()
