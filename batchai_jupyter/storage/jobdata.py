"""A job's data beyond the nodes' own disks: inputs staged in, mounts shown, logs and outputs flushed out.

The JobRunner calls `prepare()` before a job's tasks start and `flush()` on every engine cycle
(in the background, at most every flush interval) and once more, waiting, when the job ends.
Datastores that nodes write directly (a local or shared directory) need none of it; a datastore
with a `sync` (a MirrorSync: Blob) gets its mirror staged in and copied out.
"""
from __future__ import annotations

import os
from typing import Callable

from ..errors import BatchAIError
from .mounts import Mount, MountResolver, link_mount, local_datastore_creator, run_mount_command

LAYOUT_SEGMENT = Callable[[str, str, str], str]


class JobData:
    def __init__(self, store, layout, datastore_for: Callable[..., object], job_segment: LAYOUT_SEGMENT):
        self.store = store
        self.layout = layout
        self.datastore_for = datastore_for  # (workspace[, name]) -> Datastore
        self.job_segment = job_segment

    def _default_sync(self, job: dict):
        return getattr(self.datastore_for(job["workspace"]), "sync", None)

    def mounts(self, job: dict) -> tuple[list[Mount], list[Mount]]:
        """(cluster-level, job-level) mounts of the job."""
        workspace = job["workspace"]
        resolver = MountResolver(
            datastores=lambda: self.store.query("SELECT * FROM datastores WHERE workspace = ? ORDER BY name",
                                                workspace),
            open_datastore=lambda name: self.datastore_for(workspace, name),
            create_local_datastore=local_datastore_creator(self.store, self.layout, workspace))
        cluster = self.store.cluster(workspace, job["cluster"]) or {"spec": {}}
        return (resolver.resolve(cluster["spec"].get("mount_volumes")),
                resolver.resolve(job["spec"].get("mount_volumes")))

    # -- before the tasks start ----------------------------------------------------------------

    def prepare(self, job: dict, input_paths: list[str], nodes: list, remote: bool) -> list[str]:
        """Stages inputs and mounts in and shows the mounts on every node; returns notes for the log."""
        sync = self._default_sync(job)
        if sync is not None:
            for path in input_paths:
                relative = os.path.relpath(os.path.abspath(path), sync.root)
                if relative != ".." and not relative.startswith("../"):
                    sync.stage_in("" if relative == "." else relative.replace(os.sep, "/"))
        cluster_mounts, job_mounts = self.mounts(job)
        if not (cluster_mounts or job_mounts):
            return []
        if remote:
            raise BatchAIError("MountsNotSupported", "mountVolumes: this cluster's backend cannot show datastore "
                                                     "mounts on its nodes yet; use a shared path or inputDirectories")
        for mount in cluster_mounts + job_mounts:
            if mount.sync is not None:
                mount.sync.stage_in("")  # a mount shows the whole container; unchanged files are not fetched
        for node in nodes:
            for root, group in ((node.mount_root, cluster_mounts), (node.job_mount_root, job_mounts)):
                for mount in group:
                    if mount.command:
                        run_mount_command(root, mount)
                    else:
                        link_mount(root, mount)
        return [f"mount {m.relative_path}: {m.note}" for m in cluster_mounts + job_mounts if m.note]

    # -- while it runs, and at its end ---------------------------------------------------------

    def flush(self, job: dict, final: bool) -> list[dict]:
        """Copies the job's logs and outputs (and, at the end, its mounts' changes) out of the mirrors."""
        syncs = []
        sync = self._default_sync(job)
        if sync is not None:
            syncs.append((sync, self.job_segment(job["experiment"], job["name"], job["uuid"])))
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
                errors.append({"code": "OutputUploadFailed", "message": (
                    f"the job's logs and outputs could not all be copied to their datastore ({failure}); they are "
                    f"kept in {sync.local(folder)}")})
        return errors
