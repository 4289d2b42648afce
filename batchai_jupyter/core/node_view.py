"""A job's directories as the node of each of its tasks sees them.

The launch context names directories on the service's machine: a datastore's node_path for the logs,
the outputs, the checkpoints and every `datastore://` input, and the job's shared temp. Nodes that see
the service's files use those paths as they are. For nodes that are other machines the backend says
where each one is on a node (RemoteNodes.node_path); the tasks are planned with those paths, so their
command lines and variables hold what the node sees, and each launch lists the directories the backend
must put there.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

from ..ports.compute import NodeDirectory
from .launch import JobContext, NodeContext, TaskPlan

NodePath = Callable[[str], str]  # a directory of the service's machine -> where one node sees it
Planner = Callable[[JobContext, Sequence[NodeContext]], list[TaskPlan]]


def _on(node_path: NodePath, path: str) -> str:
    # Not every input is a path here: Batch AI's $AZ_BATCHAI_JOB_MOUNT_ROOT/... is the node's own.
    return node_path(path) if os.path.isabs(path) else path


def as_seen_on(context: JobContext, node_path: NodePath) -> JobContext:
    """`context` with its directories where the node sees them."""
    return dataclasses.replace(
        context,
        stdouterr_dir=_on(node_path, context.stdouterr_dir),
        shared_job_temp=_on(node_path, context.shared_job_temp),
        hostfile=_on(node_path, context.hostfile),
        input_paths={key: _on(node_path, path) for key, path in context.input_paths.items()},
        output_paths={key: _on(node_path, path) for key, path in context.output_paths.items()},
        checkpoint_dir=_on(node_path, context.checkpoint_dir) if context.checkpoint_dir else "",
    )


def directories(context: JobContext, node_path: NodePath) -> tuple[NodeDirectory, ...]:
    """The job's directories a node must see, each with where it sees it."""
    kinds = [(path, "input") for path in context.input_paths.values()]
    kinds += [(path, "output") for path in (*context.output_paths.values(), context.checkpoint_dir) if path]
    kinds.append((context.shared_job_temp, "shared"))
    return tuple(
        NodeDirectory(os.path.normpath(path), node_path(path), kind) for path, kind in kinds if os.path.isabs(path)
    )


def plan_on_nodes(
    planner: Planner, context: JobContext, nodes: Sequence[NodeContext], node_path_of: Callable[[int], NodePath] | None
) -> list[tuple[TaskPlan, tuple[NodeDirectory, ...]]]:
    """The phase's tasks, each planned with its own node's paths, and what its node must see; with no
    `node_path_of` (nodes that see the service's files) as planned here."""
    if node_path_of is None:
        return [(plan, ()) for plan in planner(context, nodes)]
    here = planner(context, nodes)
    per_node = {}
    for index in sorted({plan.node_index for plan in here}):
        node_path = node_path_of(index)
        per_node[index] = (planner(as_seen_on(context, node_path), nodes), directories(context, node_path))
    # Planning depends on paths only in the strings it makes: the same tasks, in the same order.
    return [
        (per_node[plan.node_index][0][position], per_node[plan.node_index][1]) for position, plan in enumerate(here)
    ]
