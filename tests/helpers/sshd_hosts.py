"""Real SSH hosts for the tests: OpenSSH servers, each in a network namespace of its own.

Every host gets a namespace with its own address on a bridge the test makes (so the hosts reach
each other and the service reaches them, as machines on one LAN), its own sshd with its own host
key, config and authorized_keys, its own home directory (bind-mounted over ~ inside the host's mount
namespace, so ~/.ssh and the node root are the host's own) and no view of the service's files (the
pytest base directory, where the service's home lives, is hidden under an empty tmpfs). Nothing
is faked: the backend logs in, copies files and starts processes over real SSH.

`kill(host)` is a host dying: sshd and every process in the host's namespace get SIGKILL.
Namespaces, bridge and processes are removed by `close()`.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from .waits import wait_for_server

SSHD = "/usr/sbin/sshd"

SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {dir}/ssh_host_ed25519_key
AuthorizedKeysFile {dir}/authorized_keys .ssh/authorized_keys
PidFile {dir}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100
Subsystem sftp internal-sftp
MaxSessions 100
LogLevel ERROR
"""


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _cgroup_mounts() -> list[str]:
    """The machine's cgroup file systems, mounted again in a host's namespace (`ip netns exec` gives it a
    fresh /sys without them): a real host has its own, and container runtimes need them."""
    commands = []
    with open("/proc/self/mounts") as handle:
        for line in handle:
            _, path, kind, options = line.split()[:4]
            if path == "/sys/fs/cgroup" and kind == "tmpfs":
                commands.append("mount -t tmpfs tmpfs /sys/fs/cgroup")
            elif path.startswith("/sys/fs/cgroup") and kind in ("cgroup", "cgroup2"):
                commands.append(f"mkdir -p {path} && mount -t {kind} -o {options} {kind} {path}")
    return commands


@dataclass
class SshHost:
    name: str  # also the namespace's name
    address: str
    directory: str  # sshd's files, and the host's home under home/
    process: subprocess.Popen | None = None

    @property
    def spec(self) -> str:
        return f"root@{self.address}"

    @property
    def home(self) -> str:
        return os.path.join(self.directory, "home")

    def host_key_line(self) -> str:
        with open(os.path.join(self.directory, "ssh_host_ed25519_key.pub")) as handle:
            kind, key = handle.read().split()[:2]
        return f"{self.address} {kind} {key}\n"


class SshHosts:
    def __init__(self, count: int, hidden: list[str], users: tuple[str, ...] = ()):
        self.tag = f"{os.getpid() % 1000:03d}{random.randint(0, 999):03d}"
        self.subnet = f"10.{random.randint(200, 250)}.{random.randint(1, 250)}"
        self.bridge = f"bb{self.tag}"
        self.directory = tempfile.mkdtemp(prefix="batchai-sshd-")
        self.hidden = [path for path in hidden if os.path.isdir(path)]
        # More names for the hosts' root (a cloud VM's admin user, with its sudo rights), in the hosts'
        # own /etc/passwd; the machine's is left alone.
        self.users = users
        self.client_key = os.path.join(self.directory, "id_ed25519")
        self.known_hosts = os.path.join(self.directory, "known_hosts")
        self.hosts: list[SshHost] = []
        try:
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "batchai-test-client", "-f", self.client_key)
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for index in range(count):
                self.hosts.append(self._make_host(index))
            with open(self.known_hosts, "w") as handle:
                handle.writelines(host.host_key_line() for host in self.hosts)
            for host in self.hosts:
                self.start(host)
        except BaseException:
            self.close()
            raise

    def _make_host(self, index: int) -> SshHost:
        name = f"bh{self.tag}{index}"
        host = SshHost(name, f"{self.subnet}.{index + 2}", os.path.join(self.directory, name))
        os.makedirs(os.path.join(host.home, ".ssh"), mode=0o700)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(host.directory, "ssh_host_ed25519_key"))
        shutil.copy(self.client_key + ".pub", os.path.join(host.directory, "authorized_keys"))
        with open(os.path.join(host.directory, "sshd_config"), "w") as handle:
            handle.write(SSHD_CONFIG.format(address=host.address, dir=host.directory))
        outside, inside = f"bv{self.tag}{index}", f"bp{self.tag}{index}"
        _run("ip", "netns", "add", name)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", name)
        _run("ip", "link", "set", outside, "master", self.bridge)
        _run("ip", "link", "set", outside, "up")
        _run("ip", "netns", "exec", name, "ip", "addr", "add", f"{host.address}/24", "dev", inside)
        _run("ip", "netns", "exec", name, "ip", "link", "set", inside, "up")
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        return host

    def start(self, host: SshHost, timeout: float = 20.0) -> None:
        """Starts (or restarts) the host's sshd, in a mount namespace with the host's own home."""
        os.makedirs("/run/sshd", exist_ok=True)
        # The host's own home, but with the Python the tests run (pyenv keeps it under ~) still there.
        real_home = os.path.realpath(os.path.expanduser("~"))
        mounts = []
        for keep in {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}:
            if keep.startswith(real_home + "/"):
                inside = os.path.join(host.home, os.path.relpath(keep, real_home))
                os.makedirs(inside, exist_ok=True)
                mounts.append(f"mount --bind {keep} {inside}")
        mounts.append(f"mount --rbind {host.home} {real_home}")
        if self.users:
            passwd = os.path.join(host.directory, "passwd")
            with open("/etc/passwd") as source, open(passwd, "w") as handle:
                handle.write(source.read())
                handle.writelines(f"{user}:x:0:0:{user}:{real_home}:/bin/sh\n" for user in self.users)
            mounts.append(f"mount --bind {passwd} /etc/passwd")
        mounts += [f"mount -t tmpfs tmpfs {path}" for path in self.hidden]
        mounts += _cgroup_mounts()
        sshd = f"exec {SSHD} -D -f {host.directory}/sshd_config -E {host.directory}/sshd.log"
        script = " && ".join([*mounts, sshd])
        host.process = subprocess.Popen(
            ["ip", "netns", "exec", host.name, "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(host.directory, "start.log"), "ab"),
        )

        def listens() -> bool:
            listening = "ss -ltn 'sport = :22' | grep -q LISTEN"
            probe = subprocess.run(["ip", "netns", "exec", host.name, "sh", "-c", listening], capture_output=True)
            return probe.returncode == 0

        wait_for_server(host.process, listens, f"sshd of {host.name}", timeout, lambda: self.log(host))

    def log(self, host: SshHost) -> str:
        text = ""
        for name in ("start.log", "sshd.log"):
            path = os.path.join(host.directory, name)
            if os.path.exists(path):
                with open(path, errors="replace") as handle:
                    text += handle.read()[-2000:]
        return text

    def pids(self, host: SshHost) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", host.name], capture_output=True, text=True)
        return [int(p) for p in done.stdout.split()]

    def reimage(self, host: SshHost) -> None:
        """The host becomes a fresh machine: everything on it is killed, its home emptied, sshd started again."""
        self.kill(host)
        real_home = os.path.realpath(os.path.expanduser("~"))
        python_dirs = {os.path.relpath(p, real_home).split(os.sep)[0] for p in (sys.base_prefix, sys.prefix)}
        for entry in os.listdir(host.home):
            if entry not in python_dirs:  # the mount points of the Python the tests run (empty out here)
                path = os.path.join(host.home, entry)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        os.makedirs(os.path.join(host.home, ".ssh"), mode=0o700, exist_ok=True)
        self.start(host)

    def kill(self, host: SshHost) -> None:
        """The host dies: its sshd and every process running on it are killed outright."""
        for _ in range(5):
            pids = self.pids(host)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if host.process:
            host.process.wait()

    def run_on(self, host: SshHost, command: str) -> str:
        """A command on the host as the host sees itself (for test checks only)."""
        return _run("ip", "netns", "exec", host.name, "sh", "-c", command)

    def close(self) -> None:
        for host in self.hosts:
            self.kill(host)
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)
