"""What a Slurm cluster is configured with.

Options come from two places, merged with the cluster's own winning: the service's
`BatchAIApp.backend_options["slurm"]` (site defaults: the shared file system, slurm.conf) and the
cluster's `backendOptions` (cluster.json, `batchai cluster create --backend slurm --partition ...`).
Every option, camelCase as in cluster.json:

    partition        the Slurm partition jobs go to and nodes are listed from (default: Slurm's default)
    account, qos     sbatch --account / --qos
    highPriorityQos  the qos for jobs of high schedulingPriority (default: a negative --nice)
    gpusPerNode      GPUs each job asks per node (sbatch --gres=gpu:N); AZ_BATCHAI_NUM_GPUS follows it
                     (default: the cluster's gpusPerNode)
    gres             a raw --gres request instead (e.g. "gpu:a100:4")
    sbatchOptions    extra sbatch arguments, e.g. ["--constraint=ib", "--exclusive"]
    maxNodesInUse    how many nodes this cluster's jobs may hold in Slurm at once (default: no cap)
    sharedRoot       a directory on the file system every node and the service share, for the jobs'
                     control files (default: the service's home, BATCHAI_HOME/slurm)
    pathMap          {"/path/on/service": "/path/on/nodes"} where the nodes mount the shared file
                     system (the datastore, sharedRoot) under another path than the service
    nodeRoot         each node's working directory (AZ_BATCHAI_JOB_TEMP etc.), NODE replaced by the
                     node's name (default: sharedRoot/nodes/NODE)
    python           the Python on the nodes that runs our driver and wrapper, and the jobs' default
                     interpreter (default: the service's own, for both)
    slurmConf        the slurm.conf the commands use (default: $SLURM_CONF or Slurm's own default)
    loginNode        when the service is not on a login node: "user@login1[:port]", where the Slurm
                     commands run over SSH (the SSH backend's connections: keyFile, knownHosts,
                     trustOnFirstUse, connectTimeout as for `--backend ssh`). The shared file system
                     must still be mounted on the service's machine (pathMap for other paths).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BatchAIError

_KNOWN = {
    "partition",
    "account",
    "qos",
    "highPriorityQos",
    "gpusPerNode",
    "gres",
    "sbatchOptions",
    "maxNodesInUse",
    "sharedRoot",
    "pathMap",
    "nodeRoot",
    "python",
    "slurmConf",
    "loginNode",
}
_LOGIN_KNOWN = {"keyFile", "key", "knownHosts", "trustOnFirstUse", "connectTimeout"}


@dataclass(frozen=True)
class SlurmOptions:
    shared_root: str
    partition: str = ""
    account: str = ""
    qos: str = ""
    high_priority_qos: str = ""
    gpus_per_node: int = 0
    gres: str = ""
    sbatch_options: tuple[str, ...] = ()
    max_nodes_in_use: int | None = None
    path_map: tuple[tuple[str, str], ...] = ()
    node_root: str = ""
    python: str = field(default_factory=lambda: sys.executable)
    python_given: bool = False  # the jobs' default interpreter too (else theirs stays the service's)
    slurm_conf: str = ""
    login_node: object = None  # ssh_options.HostSpec when the commands run over SSH
    login: tuple = ()  # (key_file, known_hosts, trust_on_first_use, connect_timeout) for login_node

    @property
    def where(self) -> str:
        """Which Slurm the commands reach: the login node (or this machine) and the slurm.conf."""
        return f"{self.login_node.label if self.login_node else 'local'}|{self.slurm_conf}"

    def on_nodes(self, path: str) -> str:
        """`path` as the nodes see it (pathMap applied, longest prefix first)."""
        for local, remote in self.path_map:
            if path == local or path.startswith(local.rstrip("/") + "/"):
                return remote.rstrip("/") + path[len(local.rstrip("/")) :]
        return path

    @property
    def nodes_root(self) -> str:
        return self.node_root or os.path.join(self.on_nodes(self.shared_root), "nodes", "NODE")


def _text(options: Mapping, key: str) -> str:
    value = options.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BatchAIError("InvalidBackendOptions", f"backendOptions.{key}: expected a string, got {value!r}")
    return value.strip()


def _count(options: Mapping, key: str, minimum: int) -> int | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or number < minimum or str(number) != str(value).strip():
        raise BatchAIError(
            "InvalidBackendOptions", f"backendOptions.{key}: {value!r} is not a whole number of at least {minimum}"
        )
    return number


def _absolute(options: Mapping, key: str, value: str) -> str:
    if value and not os.path.isabs(value):
        raise BatchAIError("InvalidBackendOptions", f"backendOptions.{key}: {value!r} must be an absolute path")
    return value


def parse_slurm_options(site: Mapping[str, Any], cluster: Mapping[str, Any], home: str) -> SlurmOptions:
    """The options of one cluster; BatchAIError naming the option when one is wrong."""
    merged = {**(site or {}), **(cluster or {})}
    unknown = sorted(set(merged) - _KNOWN - _LOGIN_KNOWN)
    if unknown:
        raise BatchAIError(
            "InvalidBackendOptions",
            f"backendOptions: {', '.join(unknown)} not known to the slurm backend; use: {', '.join(sorted(_KNOWN))}",
        )
    extra = merged.get("sbatchOptions") or []
    if isinstance(extra, str):
        extra = extra.split()
    if not isinstance(extra, list) or not all(isinstance(item, str) and item.startswith("-") for item in extra):
        raise BatchAIError(
            "InvalidBackendOptions",
            'backendOptions.sbatchOptions: give a list of sbatch options such as ["--constraint=ib"]',
        )
    path_map = merged.get("pathMap") or {}
    if not isinstance(path_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and os.path.isabs(k) and os.path.isabs(v) for k, v in path_map.items()
    ):
        raise BatchAIError(
            "InvalidBackendOptions",
            'backendOptions.pathMap: give {"/path/on/service": "/path/on/nodes"} with absolute paths',
        )
    given = _absolute(merged, "python", _text(merged, "python"))
    return SlurmOptions(
        shared_root=_absolute(merged, "sharedRoot", _text(merged, "sharedRoot")) or os.path.join(home, "slurm"),
        partition=_text(merged, "partition"),
        account=_text(merged, "account"),
        qos=_text(merged, "qos"),
        high_priority_qos=_text(merged, "highPriorityQos"),
        gpus_per_node=_count(merged, "gpusPerNode", 0) or 0,
        gres=_text(merged, "gres"),
        sbatch_options=tuple(extra),
        max_nodes_in_use=_count(merged, "maxNodesInUse", 1),
        path_map=tuple(sorted(path_map.items(), key=lambda item: -len(item[0]))),
        node_root=_absolute(merged, "nodeRoot", _text(merged, "nodeRoot")),
        python=given or sys.executable,
        python_given=bool(given),
        slurm_conf=_absolute(merged, "slurmConf", _text(merged, "slurmConf")),
        **_login(merged),
    )


def _login(merged: Mapping) -> dict:
    """The login node and how to log in to it, checked the way the SSH backend checks its hosts."""
    if not merged.get("loginNode"):
        extra = sorted(set(merged) & _LOGIN_KNOWN)
        if extra:
            raise BatchAIError(
                "InvalidBackendOptions",
                f"backendOptions.{extra[0]}: only used with loginNode "
                "(the login node the Slurm commands run on over SSH)",
            )
        return {}
    from .ssh_options import parse_host, parse_options

    host = parse_host(merged["loginNode"], "loginNode", os.environ.get("USER") or "root")
    ssh = parse_options({}, {"hosts": [merged["loginNode"]], **{k: merged[k] for k in _LOGIN_KNOWN if k in merged}})
    return {"login_node": host, "login": (ssh.key_file, ssh.known_hosts, ssh.trust_on_first_use, ssh.connect_timeout)}
