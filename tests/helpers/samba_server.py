"""A real Samba server (smbd) on 127.0.0.1 for the SMB share tests: one share, one user.

It runs as root with its own configuration, state and password database under `work_dir`; the SMB
user name is mapped to root, so no system account is created.
"""

from __future__ import annotations

import os
import subprocess

from .tools import free_port, require_tool
from .waits import wait_listening

CONFIG = """[global]
  smb ports = {port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  private dir = {work}/private
  state directory = {work}/state
  cache directory = {work}/state
  lock directory = {work}/state
  pid directory = {work}/state
  ncalrpc dir = {work}/state/ncalrpc
  log file = {work}/smbd.log
  passdb backend = tdbsam:{work}/private/passdb.tdb
  username map = {work}/users.map
  server role = standalone server
  disable netbios = yes
  load printers = no
  printing = bsd
  printcap name = /dev/null
  server min protocol = SMB2
[{share}]
  path = {path}
  read only = no
"""


class Samba:
    def __init__(self, work_dir: str, share: str, user: str, password: str):
        self.work_dir, self.share, self.user, self.password = work_dir, share, user, password
        self.path = os.path.join(work_dir, "export")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Samba:
        smbd = require_tool("smbd", "install it with `apt-get install samba`")
        for sub in ("private", "state", "export"):
            os.makedirs(os.path.join(self.work_dir, sub), exist_ok=True)
        config = os.path.join(self.work_dir, "smb.conf")
        with open(config, "w") as handle:
            handle.write(CONFIG.format(port=self.port, work=self.work_dir, share=self.share, path=self.path))
        with open(os.path.join(self.work_dir, "users.map"), "w") as handle:
            handle.write(f"root = {self.user}\n")
        subprocess.run(
            [require_tool("smbpasswd", "install it with `apt-get install samba`"), "-c", config, "-s", "-a", "root"],
            input=f"{self.password}\n{self.password}\n",
            text=True,
            check=True,
            capture_output=True,
        )
        self.process = subprocess.Popen(
            [smbd, "-s", config, "--foreground", "--no-process-group"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_listening(self.process, self.port, "smbd", f"{self.work_dir}/smbd.log", timeout)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait()
