"""Real file-system mounts of a Blob container or an SMB file share on a node.

Used only where the cluster asks for them (`nativeMounts: true`) and the node has the tool; anywhere
else a mount is the staged copy or local directory of storage/mounts.py. The node-side work is one
bash script per mount and per unmount, so that the local backend runs it with bash and a remote one
over its connection; the secret (a container SAS URL, a share's key) reaches it on standard input,
never in a command line, a file or a log.

- Blob: `rclone mount` of the container through its SAS URL (FUSE), with a write cache so that jobs
  can append and rewrite files; a closed file is uploaded at once. Unmounting waits until the
  cache holds no file still to upload, so a job's outputs are in the container when it ends.
- SMB (azureFileShares): the kernel's CIFS client where the node's kernel has one (as Batch AI
  mounted shares), else `rclone mount` of the share over SMB.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import BatchAIError
from ..ports.compute import NodeScript

# How long a node's mount may write to the container with the SAS it was given.
MOUNT_SAS_MINUTES = 7 * 24 * 60
# How long an unmount waits for the files a job closed to reach the storage.
UPLOAD_WAIT_SECONDS = 600
NO_TOOL_EXIT = 3  # the node lacks what the mount needs: fall back to the staged copy
FAILED_EXIT = 4

# The mount's rclone options: a write cache (jobs append and rewrite files), uploads on close, and a
# short directory cache so that nodes see each other's new files soon.
_RCLONE_OPTIONS = (
    "--config /dev/null --daemon --vfs-cache-mode writes --vfs-write-back 0s --dir-cache-time 2s --allow-non-empty"
)
_HAS_FUSE_RCLONE = (
    "[ -e /dev/fuse ] && command -v rclone >/dev/null && "
    "{ command -v fusermount3 || command -v fusermount; } >/dev/null"
)


@dataclass(frozen=True)
class NativeMount:
    """What a node mounts: `kind` blob (rclone remote on a container) or smb (a share)."""

    kind: str
    remote: str  # the rclone remote, without its secret: ":azureblob:<container>" / ":smb,host=..:<share>"
    secret: str  # the container's SAS URL, or the share's password
    description: str  # for notes: which container or share, where
    cifs_source: str = ""  # //host/share, for the kernel's CIFS client
    cifs_options: str = ""

    def __repr__(self) -> str:  # never the secret
        return f"NativeMount({self.kind}, {self.description})"


def blob_native_mount(container: str, container_url: str) -> NativeMount:
    endpoint = container_url.split("?", 1)[0].rsplit("/", 1)[0]
    return NativeMount("blob", f":azureblob:{container}", container_url, f"Blob container {container!r} at {endpoint}")


def smb_native_mount(azure_file_url: str, account: str, key: str, where: str) -> NativeMount:
    """A share from an azureFileShares entry: https://<account>.file.core.windows.net/<share>; a port
    in the URL is the SMB server's port (445 when none)."""
    parts = urlsplit(azure_file_url)
    share = parts.path.strip("/").split("/", 1)[0]
    if not parts.hostname or not share:
        raise BatchAIError(
            "InvalidMount", f"{where}.azureFileUrl: write it as https://<account>.file.core.windows.net/<share>"
        )
    port = parts.port or 445
    user = account or parts.hostname.split(".", 1)[0]
    remote = f":smb,host={_remote_value(parts.hostname)},port={port},user={_remote_value(user)}:{share}"
    return NativeMount(
        "smb",
        remote,
        key,
        f"SMB share {share!r} on {parts.hostname}:{port}",
        cifs_source=f"//{parts.hostname}/{share}",
        cifs_options=f"vers=3.0,port={port},username={user},dir_mode=0777,file_mode=0777,serverino",
    )


def _remote_value(value: str) -> str:
    if any(c in value for c in ",:'\"=") or not value:
        raise BatchAIError("InvalidMount", f"{value!r} cannot be part of an SMB address")
    return value


def mount_script(native: NativeMount, path: str, cache: str) -> str:
    """bash that mounts `native` at `path` (secret on stdin); prints `mounted <tool>`, or exits
    NO_TOOL_EXIT saying what the node lacks, or FAILED_EXIT saying why the mount failed."""
    p, c, remote = shlex.quote(path), shlex.quote(cache), shlex.quote(native.remote)
    lines = [
        "IFS= read -r SECRET || true",
        f"if mountpoint -q {p}; then echo 'mounted earlier'; exit 0; fi",
        f"if [ -L {p} ]; then rm -f {p}; fi",  # a staged copy's link from an earlier fallback
        f"mkdir -p {p} {c} || exit {FAILED_EXIT}",
        # the storage's error code where rclone logged one, else its first error, else its last line
        f"reason() {{ r=$(grep -o 'ServiceCode=[A-Za-z]*' {c}/mount.log 2>/dev/null | head -n 1); "
        f"[ -n \"$r\" ] || r=$(grep -m 1 ERROR {c}/mount.log 2>/dev/null | sed 's/.*ERROR : //'); "
        f'[ -n "$r" ] || r=$(grep -v \'^$\' {c}/mount.log 2>/dev/null | tail -n 1); echo "$r"; }}',
        f": > {c}/mount.log",
    ]
    rclone_mount = (
        f"rclone mount {remote} {p} {_RCLONE_OPTIONS} --cache-dir {c} "
        f"--log-file {c}/mount.log --log-level NOTICE </dev/null >>{c}/mount.log 2>&1"
    )
    # rclone checks no credentials when it mounts: list the mount, so that a wrong key fails here
    checked = (
        f'{{ if ls {p} >/dev/null 2>&1; then echo "mounted rclone"; exit 0; fi; '
        f"fusermount3 -u {p} 2>/dev/null || fusermount -u {p}; }}"
    )
    if native.kind == "blob":
        lines += [
            f"if ! {{ {_HAS_FUSE_RCLONE}; }}; then echo 'no rclone with FUSE (/dev/fuse and fusermount)'; "
            f"exit {NO_TOOL_EXIT}; fi",
            f'RCLONE_AZUREBLOB_SAS_URL="$SECRET" {rclone_mount} && {checked}',
        ]
    else:
        lines += [
            "if grep -qw cifs /proc/filesystems && command -v mount.cifs >/dev/null; then",
            f'  PASSWD="$SECRET" mount -t cifs {shlex.quote(native.cifs_source)} {p} '
            f'-o {shlex.quote(native.cifs_options)} 2>{c}/mount.log && {{ echo "mounted cifs"; exit 0; }}',
            f'  echo "failed: $(reason)"; exit {FAILED_EXIT}',
            "fi",
            f"if ! {{ {_HAS_FUSE_RCLONE}; }}; then echo 'neither a kernel CIFS client nor rclone with FUSE'; "
            f"exit {NO_TOOL_EXIT}; fi",
            'PASS=$(printf %s "$SECRET" | rclone obscure -) || exit 4',
            f'RCLONE_SMB_PASS="$PASS" {rclone_mount} && {checked}',
        ]
    lines.append(f'echo "failed: $(reason)"; exit {FAILED_EXIT}')
    return "\n".join(lines) + "\n"


def mount_points_under(root: str, mounts_table: str = "/proc/self/mounts") -> list[str]:
    """The mount points at or under `root` on this machine, deepest first (for unmounting before removal)."""
    root = root.rstrip("/")
    found = []
    try:
        with open(mounts_table) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 1:
                    point = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
                    if point == root or point.startswith(root + "/"):
                        found.append(point)
    except OSError:
        return []
    return sorted(found, key=len, reverse=True)


def cache_dir(path: str) -> str:
    """Where the mount at `path` keeps its write cache: a hidden sibling, so that the node's unmount
    finds it from the mount point alone."""
    parent, name = posixpath.split(path.rstrip("/"))
    return posixpath.join(parent, f".{name}.mount-cache")


def mount_natively(run: NodeScript, native: NativeMount, path: str) -> tuple[bool, str]:
    """Mounts `native` at `path` on the node `run` reaches: (True, note) when mounted, (False, note
    saying what the node lacks) when it cannot; BatchAIError when the mount itself fails."""
    code, output = run(mount_script(native, path, cache_dir(path)), native.secret + "\n")
    last = (_scrub(output, native.secret).strip().splitlines() or [""])[-1][:300]
    if code == 0:
        return True, f"{native.description}: {last or 'mounted'}"
    if code == NO_TOOL_EXIT:
        return False, f"{native.description} cannot be mounted there ({last}), so the node gets a copy"
    reason = last.removeprefix("failed: ") or f"exit code {code}"
    raise BatchAIError(
        "MountFailed",
        f"mounting {native.description} at {path} failed ({reason}); "
        "check the storage's credentials and that the node reaches it",
    )


def unmount_under_script(root: str, wait_seconds: int = UPLOAD_WAIT_SECONDS) -> str:
    """bash that unmounts every mount point at or under `root`, deepest first, each once its write
    cache holds nothing still to upload; exits FAILED_EXIT naming any that kept files or stayed mounted."""
    return (
        "\n".join(
            [
                f"root={shlex.quote(root.rstrip('/'))}",
                "status=0",
                "while IFS= read -r p; do",
                '  [ -n "$p" ] || continue',
                '  meta="$(dirname "$p")/.$(basename "$p").mount-cache/vfsMeta"',
                f"  end=$((SECONDS + {int(wait_seconds)}))",
                '  while grep -rqs \'"Dirty": true\' "$meta" && [ $SECONDS -lt $end ]; do sleep 0.2; done',
                '  pending=$(grep -rls \'"Dirty": true\' "$meta" 2>/dev/null | wc -l)',
                '  fusermount3 -u "$p" 2>/dev/null || fusermount -u "$p" 2>/dev/null || umount "$p" 2>/dev/null || '
                'umount -l "$p" 2>/dev/null',
                '  if mountpoint -q "$p"; then echo "$p: still mounted"; status=4',
                '  elif [ "$pending" != 0 ]; then echo "$p: $pending file(s) were not yet uploaded"; status=4; fi',
                "done <<EOF",
                '$(awk -v r="$root" \'$2 == r || index($2, r "/") == 1 {print $2}\' /proc/self/mounts | sort -r)',
                "EOF",
                "exit $status",
            ]
        )
        + "\n"
    )


def run_local_script(script: str, stdin: str = "", timeout: float = UPLOAD_WAIT_SECONDS + 60) -> tuple[int, str]:
    """A NodeScript for a node that is this machine."""
    try:
        done = subprocess.run(["/bin/bash", "-c", script], input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return FAILED_EXIT, f"did not finish within {timeout:.0f}s"
    return done.returncode, done.stdout + done.stderr


def _scrub(text: str, secret: str) -> str:
    """`text` without the secret or any SAS signature in it."""
    if secret:
        text = text.replace(secret, "***")
        if "?" in secret:
            text = text.replace(secret.split("?", 1)[1], "***")
    return re.sub(r"sig=[^&\s\"']+", "sig=***", text)


class MountableContainer(ABC):
    """A datastore whose container nodes can mount themselves (rclone over a SAS URL)."""

    @abstractmethod
    def container_url(self, expiry_minutes: int) -> str | None:
        """The container's URL with a SAS nodes can mount it with; None when the credentials cannot sign one."""

    @abstractmethod
    def account_key(self) -> str:
        """The storage account's key ("" without one): also the key of the account's file shares."""
