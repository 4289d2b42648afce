"""What an SSH cluster is made of: its hosts and how to log in to them.

Options come from two places, merged with the cluster's own winning: the service's
`BatchAIApp.backend_options["ssh"]` (site defaults such as a known_hosts file) and the cluster's
`backendOptions` (cluster.json, `batchai cluster create --backend ssh --hosts ... --key ...`, the
magics). Every option, camelCase as in cluster.json:

    hosts            ["user@a", "user@b:2222", {"host": "c", "user": "u", "port": 22,
                      "address": "10.0.0.3"}]   (required; `address` is what the other hosts reach)
    keyFile          private key file (default: the SSH agent and ~/.ssh/id_* keys)
    knownHosts       known_hosts file host keys are checked against (default ~/.ssh/known_hosts)
    trustOnFirstUse  record an unknown host key instead of refusing it (default false)
    python           the Python that runs our wrapper on the hosts (default python3)
    root             the node's working directory on each host (default ~/.batchai-node)
    connectTimeout   seconds to wait for a host to answer (default 10)
    outputSyncSeconds  how often outputs (checkpoints) are copied back while a job runs (default 10)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BatchAIError

_HOST = re.compile(r"^(?:(?P<user>[^@\s:]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@\s:\[\]]+)(?::(?P<port>\d+))?$")
_KNOWN = {
    "hosts",
    "keyFile",
    "key",
    "knownHosts",
    "trustOnFirstUse",
    "python",
    "root",
    "connectTimeout",
    "outputSyncSeconds",
}


@dataclass(frozen=True)
class HostSpec:
    host: str  # the name or address SSH connects to
    user: str
    port: int = 22
    address: str = ""  # what the other hosts reach this one at (default: `host` resolved by the service)

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class SshOptions:
    hosts: tuple[HostSpec, ...]
    key_file: str | None
    known_hosts: str
    trust_on_first_use: bool
    python: str
    root: str
    connect_timeout: float
    output_sync_seconds: float

    def to_dict(self) -> dict:
        """The login details a node keeps in its info (no secret: a key file's path, not its content)."""
        return {
            "key_file": self.key_file,
            "known_hosts": self.known_hosts,
            "tofu": self.trust_on_first_use,
            "python": self.python,
            "root": self.root,
            "connect_timeout": self.connect_timeout,
            "output_sync_seconds": self.output_sync_seconds,
        }

    @classmethod
    def from_node_dict(cls, host: dict, login: dict) -> SshOptions:
        return cls(
            (HostSpec(**host),),
            login["key_file"],
            login["known_hosts"],
            login["tofu"],
            login["python"],
            login["root"],
            login["connect_timeout"],
            login["output_sync_seconds"],
        )


def _fail(field: str, message: str) -> BatchAIError:
    return BatchAIError("InvalidBackendOptions", f"backendOptions.{field}: {message}")


def parse_host(value: Any, field: str, default_user: str) -> HostSpec:
    if isinstance(value, str):
        match = _HOST.match(value.strip())
        if not match:
            raise _fail(field, f"{value!r} is not a host; write user@host or user@host:port")
        port = int(match.group("port") or 22)
        host = match.group("host").strip("[]")
        spec = HostSpec(host, match.group("user") or default_user, port)
    elif isinstance(value, dict):
        unknown = set(value) - {"host", "user", "port", "address"}
        if unknown:
            raise _fail(field, f"unknown key(s) {', '.join(sorted(unknown))}; use host, user, port, address")
        if not isinstance(value.get("host"), str) or not value["host"].strip():
            raise _fail(f"{field}.host", "give the host's name or address")
        port = value.get("port", 22)
        if isinstance(port, bool) or not isinstance(port, int):
            raise _fail(f"{field}.port", f"{port!r} is not a port number")
        spec = HostSpec(
            value["host"].strip(), str(value.get("user") or default_user), port, str(value.get("address") or "")
        )
    else:
        raise _fail(field, f"{value!r} is not a host; write user@host[:port] or an object with host/user/port")
    if not 1 <= spec.port <= 65535:
        raise _fail(field, f"port {spec.port} is out of range 1-65535")
    return spec


def _number(options: Mapping, key: str, default: float, minimum: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise _fail(key, f"{value!r} is not a number of seconds of at least {minimum}")
    return float(value)


def _text(options: Mapping, key: str, default: str | None) -> str | None:
    value = options.get(key, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _fail(key, f"{value!r} is not a path or name; give a non-empty string")
    return value


def parse_options(site: Mapping | None, cluster: Mapping | None) -> SshOptions:
    """The merged, checked options of one SSH cluster; BatchAIError naming the field when wrong."""
    options = {**(site or {}), **(cluster or {})}
    unknown = set(options) - _KNOWN
    if unknown:
        raise _fail(sorted(unknown)[0], f"unknown option; the SSH backend takes {', '.join(sorted(_KNOWN))}")
    hosts = options.get("hosts")
    if isinstance(hosts, str):
        hosts = [h for h in hosts.split(",") if h.strip()]
    if not isinstance(hosts, list) or not hosts:
        raise _fail(
            "hosts",
            'give the cluster\'s hosts, e.g. ["user@a", "user@b:2222"] '
            "(`batchai cluster create --backend ssh --hosts user@a,user@b`)",
        )
    default_user = os.environ.get("USER") or "root"
    parsed = tuple(parse_host(h, f"hosts[{i}]", default_user) for i, h in enumerate(hosts))
    seen: set[tuple[str, int]] = set()
    for index, host in enumerate(parsed):
        if (host.host, host.port) in seen:
            raise _fail(f"hosts[{index}]", f"{host.host}:{host.port} is listed twice; list each host once")
        seen.add((host.host, host.port))
    key_file = _text(options, "keyFile", None) or _text(options, "key", None)
    if key_file:
        key_file = os.path.abspath(os.path.expanduser(key_file))
        if not os.path.isfile(key_file):
            raise _fail(
                "keyFile",
                f"{key_file} does not exist on the service's machine; give the path of "
                "your private key (e.g. ~/.ssh/id_ed25519), or leave it out to use the SSH agent",
            )
    known_hosts = os.path.abspath(os.path.expanduser(_text(options, "knownHosts", "~/.ssh/known_hosts")))
    tofu = options.get("trustOnFirstUse", False)
    if not isinstance(tofu, bool):
        raise _fail("trustOnFirstUse", f"{tofu!r} is not true or false")
    return SshOptions(
        hosts=parsed,
        key_file=key_file,
        known_hosts=known_hosts,
        trust_on_first_use=tofu,
        python=_text(options, "python", "python3"),
        root=_text(options, "root", "~/.batchai-node"),
        connect_timeout=_number(options, "connectTimeout", 10.0, 0.5),
        output_sync_seconds=_number(options, "outputSyncSeconds", 10.0, 0.5),
    )
