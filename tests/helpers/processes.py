"""What a job leaves behind on its nodes: a job script that starts background processes, and a /proc scan."""

from __future__ import annotations

import os
import uuid


class LeftoverProbe:
    """A 2-rank pytorch job script whose every rank starts two background sleeps named after a
    token (one in its process group, one in a session of its own), and a /proc scan for them.
    `python ranks.py TOKEN GO`: rank 1 exits 3 once the file GO exists (~ expands); rank 0 and,
    until then, rank 1 stay in the foreground."""

    SCRIPT = r"""
import os, subprocess, sys, time
token, go = sys.argv[1], os.path.expanduser(sys.argv[2])
rank = os.environ["RANK"]
subprocess.Popen([f"{token}-r{rank}-group", "600"], executable="/bin/sleep")
subprocess.Popen([f"{token}-r{rank}-session", "600"], executable="/bin/sleep", start_new_session=True)
while rank == "1" and not os.path.exists(go):
    time.sleep(0.05)
sys.exit(3) if rank == "1" else time.sleep(600)
"""

    @staticmethod
    def token() -> str:
        return "batchai-test-" + uuid.uuid4().hex[:10]

    @staticmethod
    def expected(token: str) -> list[str]:
        return [f"{token}-r{rank}-{kind}" for rank in "01" for kind in ("group", "session")]

    @staticmethod
    def processes(token: str) -> list[str]:
        """Live (non-zombie) processes whose argv[0] starts with `token`, by that name."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    name = handle.read().split(b"\0")[0].decode(errors="replace")
                with open(f"/proc/{entry}/stat") as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if name.startswith(token) and state != "Z":
                found.append(name)
        return sorted(found)
