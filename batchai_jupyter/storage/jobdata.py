"""A job's data beyond the nodes' own disks: inputs staged in, mounts shown, logs and outputs flushed out.

The JobRunner calls `prepare()` before a job's tasks start and `flush()` on every engine cycle
(in the background, at most every flush interval) and once more, waiting, when the job ends.
Datastores that nodes write directly (a local or shared directory) need none of it; a datastore
with a `sync` (a MirrorSync: Blob) gets its mirror staged in and copied out.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import threading
from collections.abc import Callable

from ..errors import BatchAIError
from ..ports.compute import ClusterRef, NodeScript
from ..ports.datastores import JobRef, JobStorage
from .mounts import Mount, MountResolver, link_mount, local_datastore_creator, run_mount_command
from .native_mounts import mount_natively, run_local_script, unmount_under_script
from .staging import Mirrored, MirrorSync

# A remote backend's way to show mounts on one of its nodes: (mount root on the node, mounts). It puts a
# copy of each source directory at <mount root>/<relative path> there (or runs the mount command) and
# copies what the node writes there back into the source directory; see SshBackend.show_mounts.
ShowMounts = Callable[[str, list], None]
NOT_SUPPORTED = (
    "this cluster's backend cannot show datastore mounts on its nodes; use a shared path or inputDirectories"
)
log = logging.getLogger("batchai")
# $AZ_BATCHAI_MOUNT_ROOT/..., ${AZ_BATCHAI_JOB_MOUNT_ROOT}/...: a path into the cluster's or the job's mounts.
_UNDER_MOUNT_ROOT = re.compile(r"^\$(?P<brace>\{)?(?P<root>AZ_BATCHAI_(?:JOB_)?MOUNT_ROOT)(?(brace)\})(?P<rest>/.*)?$")


class JobData(JobStorage):
    def __init__(self, store, layout, datastore_for: Callable[..., object]):
        self.store = store
        self.layout = layout
        self.datastore_for = datastore_for  # (workspace[, name]) -> Datastore

    def run_here(self, script: str, stdin: str) -> tuple[int, str]:
        return run_local_script(script, stdin)

    def _default_sync(self, job: JobRef) -> MirrorSync | None:
        return _sync(self.datastore_for(job.workspace))

    def _sync_of(self, workspace_and_name: tuple[str, str]) -> MirrorSync | None:
        return _sync(self.datastore_for(*workspace_and_name))

    def _datastore_names(self, workspace: str) -> list[tuple[str, str]]:
        return [(workspace, row.name) for row in self.store.datastores_of(workspace)]

    def _resolver(self, workspace: str, native: bool = False) -> MountResolver:
        return MountResolver(
            datastores=lambda: self.store.datastores_of(workspace),
            open_datastore=lambda name: self.datastore_for(workspace, name),
            create_local_datastore=local_datastore_creator(self.store, self.layout, workspace),
            native=native,
        )

    def mounts(self, job: JobRef) -> tuple[list[Mount], list[Mount]]:
        """(cluster-level, job-level) mounts of the job."""
        cluster = self.store.cluster(job.workspace, job.cluster)
        resolver = self._resolver(job.workspace, cluster is not None and cluster.spec.native_mounts)
        return (
            resolver.resolve(cluster.spec.mount_volumes if cluster is not None else None),
            resolver.resolve(job.spec.mount_volumes),
        )

    @staticmethod
    def _show(
        mounts: list[Mount],
        mount_root: str,
        node_name: str,
        run: NodeScript | None,
        show: ShowMounts | None,
        staged: set,
        cancelled: threading.Event | None = None,
    ) -> list[str]:
        """Shows `mounts` under `mount_root` on one node: a native mount where it can make one, else
        (`show` for a remote node) the staged copy, directory or mount command. Returns notes."""
        notes, rest = [], []
        for mount in mounts:
            if mount.native is not None:
                if run is None:
                    notes.append(
                        f"mount {mount.relative_path} on {node_name}: this backend cannot mount storage "
                        "on its nodes, so the node gets a copy"
                    )
                else:
                    mounted, note = mount_natively(run, mount.native, posixpath.join(mount_root, mount.relative_path))
                    notes.append(f"mount {mount.relative_path} on {node_name}: {note}")
                    if mounted:
                        continue
            rest.append(mount)
        for mount in rest:
            if id(mount) not in staged:
                mount.stage()
                staged.add(id(mount))
        if show is not None:
            show(mount_root, rest)
        else:
            for mount in rest:
                if mount.command:
                    notes.append(
                        f"mount {mount.relative_path} on {node_name}: {run_mount_command(mount_root, mount, cancelled)}"
                    )
                else:
                    link_mount(mount_root, mount)
        return notes

    # -- a new node, before its setup task ------------------------------------------------------

    def show_cluster_mounts(
        self,
        cluster: ClusterRef,
        node_name: str,
        mount_root: str,
        remote: bool,
        show: ShowMounts | None = None,
        run: NodeScript | None = None,
    ) -> list[str]:
        """Shows the cluster's mountVolumes under a new node's $AZ_BATCHAI_MOUNT_ROOT (for its setup task);
        on a remote node through the backend's `show` (None: the backend cannot); `run` runs a script on
        the node (for native mounts). Returns notes."""
        mounts = self._resolver(cluster.workspace, cluster.spec.native_mounts).resolve(cluster.spec.mount_volumes)
        if not mounts:
            return []
        if remote and show is None:
            raise BatchAIError("MountsNotSupported", f"nodeSetup.mountVolumes: {NOT_SUPPORTED}")
        return self._show(mounts, mount_root, node_name, run, show if remote else None, set())

    def flush_folder(self, workspace: str, folder: str, datastore: str | None = None) -> None:
        """Copies a finished folder (a node's setup-task logs) out of a datastore's mirror."""
        sync = _sync(self.datastore_for(workspace, datastore) if datastore else self.datastore_for(workspace))
        if sync is not None:
            try:
                sync.flush_final(folder)
            except BatchAIError as failure:
                log.warning("batchai: copying %s to the datastore failed: %s", folder, failure)

    # -- before the tasks start ----------------------------------------------------------------

    def prepare(
        self,
        job: JobRef,
        input_paths: list[str],
        nodes: list,
        remote: bool,
        show: Callable[[int], ShowMounts] | None = None,
        run: Callable[[int], NodeScript] | None = None,
        cancelled: threading.Event | None = None,
    ) -> list[str]:
        """Stages inputs and mounts in and shows the mounts on every node; returns notes for the log.
        A remote backend shows them through `show(node index)` (None: it cannot); `run(node index)` runs
        a script on a node, for native mounts; setting `cancelled` kills a mount command still running here."""
        syncs = [sync for sync in map(self._sync_of, self._datastore_names(job.workspace)) if sync is not None]
        for path in input_paths:  # an input in a staged datastore's mirror (a datastore:// location there)
            for sync in syncs:
                relative = os.path.relpath(os.path.abspath(path), sync.root)
                if relative != ".." and not relative.startswith("../"):
                    sync.stage_in("" if relative == "." else relative.replace(os.sep, "/"))
        cluster_mounts, job_mounts = self.mounts(job)
        if not (cluster_mounts or job_mounts):
            return []
        if remote and show is None:
            raise BatchAIError("MountsNotSupported", f"mountVolumes: {NOT_SUPPORTED}")
        notes = [f"mount {m.relative_path}: {m.note}" for m in cluster_mounts + job_mounts if m.note]
        staged: set = set()
        for index, node in enumerate(nodes):
            # both roots, even one with no mounts: a remote node then forgets what it showed there before
            for mounts, root in ((cluster_mounts, node.mount_root), (job_mounts, node.job_mount_root)):
                notes += self._show(
                    mounts, root, node.name, run and run(index), show and show(index), staged, cancelled
                )
        return notes

    def mount_place(self, job: JobRef, path: str) -> tuple[str, str] | None:
        match = _UNDER_MOUNT_ROOT.match(path.strip())
        if match is None:
            return None
        cluster_mounts, job_mounts = self.mounts(job)
        rest = posixpath.normpath("/" + (match["rest"] or "")).lstrip("/")
        for mount in cluster_mounts if match["root"] == "AZ_BATCHAI_MOUNT_ROOT" else job_mounts:
            if mount.datastore and (rest == mount.relative_path or rest.startswith(mount.relative_path + "/")):
                below = rest[len(mount.relative_path) :].strip("/")
                return mount.datastore, "/".join(part for part in (mount.inside, below) if part)
        return None

    def mount_sources(self, job: JobRef) -> list[str]:
        try:
            cluster_mounts, job_mounts = self.mounts(job)
        except BatchAIError:  # the job's start said so already
            return []
        return [mount.source for mount in cluster_mounts + job_mounts if mount.source]

    def cluster_mount_sources(self, cluster: ClusterRef) -> list[str]:
        try:
            mounts = self._resolver(cluster.workspace, cluster.spec.native_mounts).resolve(cluster.spec.mount_volumes)
        except BatchAIError:
            return []
        return [mount.source for mount in mounts if mount.source]

    def runs_mount_commands(self, job: JobRef) -> bool:
        try:
            cluster_mounts, job_mounts = self.mounts(job)
        except BatchAIError:  # prepare() says what is wrong
            return False
        return any(m.command for m in cluster_mounts + job_mounts)

    def mounts_are_native(self, job: JobRef) -> list[bool]:
        """For each job-level mount: whether nodes may have mounted it natively."""
        try:
            _cluster_mounts, job_mounts = self.mounts(job)
        except BatchAIError:
            return []
        return [m.native is not None or bool(m.command) for m in job_mounts]

    def unmount_job(self, nodes: list, run: Callable[[int], NodeScript]) -> list[dict]:
        """Unmounts what the job mounted under its nodes' $AZ_BATCHAI_JOB_MOUNT_ROOT, each mount once the
        files the job wrote there are in the storage; errors say what was not."""
        errors = []
        for index, node in enumerate(nodes):
            code, output = run(index)(unmount_under_script(node.job_mount_root), "")
            if code != 0:
                errors.append(
                    {
                        "code": "UnmountFailed",
                        "message": (
                            f"the job's mounts on {node.name} were not all unmounted cleanly: {output.strip()[-300:]}"
                        ),
                    }
                )
        return errors

    # -- while it runs, and at its end ---------------------------------------------------------

    def flush(self, job: JobRef, final: bool) -> list[dict]:
        """Copies the job's logs and outputs (and, at the end, its mounts' changes) out of the mirrors."""
        syncs = []
        sync = self._default_sync(job)
        if sync is not None:
            syncs.append((sync, job.segment))
        if final:
            try:
                cluster_mounts, job_mounts = self.mounts(job)
            except BatchAIError:
                cluster_mounts, job_mounts = [], []
            syncs += [(m.sync, "") for m in cluster_mounts + job_mounts if m.sync is not None]
        errors = []
        for sync, folder in syncs:
            if not final:
                sync.flush_soon(folder)
                continue
            try:
                sync.flush_final(folder)
            except BatchAIError as failure:
                errors.append(
                    {
                        "code": "OutputUploadFailed",
                        "message": (
                            f"the job's logs and outputs could not all be copied to their datastore ({failure}); the "
                            f"service keeps them in its local copy of {folder or 'the datastore'}"
                        ),
                    }
                )
        return errors


def _sync(datastore: object) -> MirrorSync | None:
    """The mirror of a datastore kept elsewhere (Blob); None for one the nodes use directly."""
    return datastore.sync if isinstance(datastore, Mirrored) else None
