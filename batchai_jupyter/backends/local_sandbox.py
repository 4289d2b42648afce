"""The local backend's sandbox: each task of a local node runs inside bubblewrap (`bwrap`).

What a task sees there:
- the machine's file system read-only, except /tmp, /var/tmp and /dev (GPUs, /dev/shm), which stay
  shared and writable as for any process of this user;
- none of the service's home (its store with every job's secrets, other jobs' files, other nodes'
  sandboxes): an empty tmpfs is laid over it, and only the task's own directories are bound back,
  writable (its node's sandbox, its job's inputs, outputs, logs, shared temp, and the job's directories on
  its other nodes, where an MPI rank of that node starts);
- none of Jupyter's runtime and config directories (the tokens of running servers, kernel keys) or
  $XDG_RUNTIME_DIR: empty tmpfs there too;
- its own process tree only (a PID namespace with a fresh /proc): the service's and other jobs'
  processes, their command lines and environments are not there, and when the task's shell ends, bwrap
  ends every process it left (`sleep 177 &` does not outlive its job); it also ends with its wrapper.

What it shares: the network (a node's tasks listen on its loopback address, other nodes reach them there),
the user id, CPU and memory (no limits), and whatever lies outside the service's home read-only.
Where bwrap cannot run (not installed, or unprivileged user namespaces switched off), the node runs its
tasks without it and says so (`isolation: none`); `backendOptions.sandbox: required` refuses that.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import BatchAIError

OPTION = "sandbox"  # backendOptions.sandbox of a local cluster, or of the service's "local" entry
MODES = ("auto", "required", "off")
BWRAP = "bwrap"
# Shared with every other process of the machine, and written by tools whatever TMPDIR says.
WRITABLE_SYSTEM = ("/tmp", "/var/tmp")
PROBE = ("--ro-bind", "/", "/", "--proc", "/proc", "--unshare-pid", "--die-with-parent", "true")


@functools.cache
def bwrap_problem() -> str | None:
    """None where bwrap makes sandboxes on this machine, else why it cannot (checked once per process)."""
    path = shutil.which(BWRAP)
    if path is None:
        return "bwrap (bubblewrap) is not installed: install the `bubblewrap` package of your distribution"
    try:
        probe = subprocess.run([path, *PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as failure:
        return f"bwrap cannot run here: {failure}"
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit code {probe.returncode}"
        return f"bwrap cannot make a sandbox here ({reason}); are unprivileged user namespaces switched off?"
    return None


def mode(site_options: Mapping[str, Any], cluster_options: Mapping[str, Any] | None) -> str:
    """The sandbox mode a cluster asks for: its own backendOptions.sandbox, else the service's, else auto.
    A service that requires it cannot be talked out of it by a cluster."""
    site = site_options.get(OPTION, "auto")
    own = (cluster_options or {}).get(OPTION, site)
    for where, value in (("the service's local backend options", site), ("backendOptions", own)):
        if value not in MODES:
            raise BatchAIError(
                "InvalidBackendOptions",
                f"{where}: sandbox must be one of {', '.join(MODES)}, not {value!r}",
            )
    return "required" if site == "required" else own


def isolation(wanted: str) -> str:
    """ "bwrap" or "none" for a node of a cluster in mode `wanted`; raises when required and not possible."""
    if wanted == "off":
        return "none"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if wanted == "required":
        raise BatchAIError(
            "SandboxUnavailable",
            f"backendOptions.sandbox is required but {problem}; or set it to auto to run tasks unsandboxed",
        )
    return "none"


def hidden_paths(home: str) -> list[str]:
    """What no task may see: the service's home and the directories that hold tokens and keys."""
    from jupyter_core.paths import jupyter_config_dir, jupyter_runtime_dir

    paths = [home, jupyter_runtime_dir(), jupyter_config_dir()]
    if os.environ.get("XDG_RUNTIME_DIR"):
        paths.append(os.environ["XDG_RUNTIME_DIR"])
    return paths


def argv(visible: Iterable[str], hidden: Iterable[str], cwd: str = "") -> list[str]:
    """The bwrap command line (without the task's command) that shows `visible` and hides `hidden`."""
    bwrap = shutil.which(BWRAP) or BWRAP
    words = [bwrap, "--die-with-parent", "--unshare-pid", "--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev"]
    words += ["--proc", "/proc"]
    # Mounts go shallow to deep: a tmpfs over the home first, then the task's directories in it.
    # Visible ones may not be there yet (bind-try skips them); hidden ones that are not there hide nothing.
    shown = {os.path.realpath(path) for path in (*WRITABLE_SYSTEM, *visible) if os.path.isabs(path)}
    covered = {os.path.realpath(path) for path in hidden if os.path.isdir(path)}
    # Each mount costs bwrap time: a directory seen through a shown one above it needs none of its own.
    mounts = {(path, "--bind-try") for path in shown if not _seen_through(path, shown, covered)}
    mounts |= {(path, "--tmpfs") for path in covered}
    for path, kind in sorted(mounts, key=lambda mount: (_depth(mount[0]), mount[1] == "--tmpfs", mount[0])):
        words += [kind, path] if kind == "--tmpfs" else [kind, path, path]
    if cwd:
        words += ["--chdir", cwd]
    return [*words, "--"]


def _seen_through(path: str, shown: set[str], hidden: set[str]) -> bool:
    """Whether `path` is seen through another shown directory above it, with nothing hidden between."""
    above = [other for other in shown if _inside(path, other)]
    return any(not any(_inside(path, cover) and _inside(cover, top) for cover in hidden) for top in above)


def _inside(path: str, top: str) -> bool:
    """`path` is strictly below `top`."""
    return path != top and path.startswith(top.rstrip("/") + "/")


def _depth(path: str) -> int:
    return len([part for part in path.split("/") if part])
