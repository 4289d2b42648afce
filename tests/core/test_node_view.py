"""A job's directories as each task's node sees them: planning with the node's paths, not rewriting text."""

from __future__ import annotations

from batchai_jupyter.core.launch import JobContext, NodeContext, plan_job_preparation, plan_tasks
from batchai_jupyter.core.models import JobSpec, ToolkitSettings
from batchai_jupyter.core.node_view import as_seen_on, directories, plan_on_nodes
from batchai_jupyter.ports.compute import NodeDirectory

HOME = "/srv/batchai"


def _node(index: int) -> NodeContext:
    root = f"/hosts/h{index}/node"
    return NodeContext(
        name=f"n{index}",
        index=index,
        ip=f"10.0.0.{index + 1}",
        mpi_host=f"h{index}",
        cpus=2,
        gpus=0,
        mount_root=f"{root}/mounts",
        job_temp_dir=f"{root}/jobs",
        job_temp=f"{root}/jobs/j",
        job_mount_root=f"{root}/jobs/j/mounts",
    )


def _job(toolkit: ToolkitSettings, node_count: int = 2, **spec_fields) -> JobContext:
    store = f"{HOME}/datastores/ws/default"
    spec = JobSpec(
        name="j", cluster="c", toolkit=toolkit, node_count=node_count, workspace="ws", experiment="e", **spec_fields
    )
    return JobContext(
        spec=spec,
        attempt=1,
        stdouterr_dir=f"{store}/e/j/u/stdouterr",
        shared_job_temp=f"{HOME}/shared/u",
        hostfile=f"{HOME}/shared/u/hostfile",
        master_port=29500,
        input_paths={
            "DATA": f"{store}/sets/mnist",
            "MOUNTED": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/x",
            "SHARED": "/nfs/data",
        },
        output_paths={"MODEL": f"{store}/e/j/u/outputs/MODEL"},
        checkpoint_dir=f"{store}/e/j/u/checkpoints",
    )


def _mirror_of(index: int):
    """A remote backend's mapping: the service's home is mirrored under each host's node root."""

    def node_path(path: str) -> str:
        return path.replace(HOME, f"/hosts/h{index}/node/mirror", 1) if path.startswith(HOME + "/") else path

    return node_path


def test_the_context_as_a_node_sees_it_maps_directories_and_keeps_node_forms():
    seen = as_seen_on(_job(ToolkitSettings(kind="custom", command_line="true")), _mirror_of(1))
    mirror = "/hosts/h1/node/mirror"
    assert seen.input_paths == {
        "DATA": f"{mirror}/datastores/ws/default/sets/mnist",
        "MOUNTED": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/x",
        "SHARED": "/nfs/data",
    }
    assert seen.output_paths == {"MODEL": f"{mirror}/datastores/ws/default/e/j/u/outputs/MODEL"}
    assert (seen.stdouterr_dir, seen.shared_job_temp, seen.hostfile, seen.checkpoint_dir) == (
        f"{mirror}/datastores/ws/default/e/j/u/stdouterr",
        f"{mirror}/shared/u",
        f"{mirror}/shared/u/hostfile",
        f"{mirror}/datastores/ws/default/e/j/u/checkpoints",
    )


def test_the_directories_a_node_must_see_are_named_with_their_kind():
    found = directories(_job(ToolkitSettings(kind="custom", command_line="true")), _mirror_of(0))
    store, mirror = f"{HOME}/datastores/ws/default", "/hosts/h0/node/mirror/datastores/ws/default"
    assert found == (
        NodeDirectory(f"{store}/sets/mnist", f"{mirror}/sets/mnist", "input"),
        NodeDirectory("/nfs/data", "/nfs/data", "input"),
        NodeDirectory(f"{store}/e/j/u/outputs/MODEL", f"{mirror}/e/j/u/outputs/MODEL", "output"),
        NodeDirectory(f"{store}/e/j/u/checkpoints", f"{mirror}/e/j/u/checkpoints", "output"),
        NodeDirectory(f"{HOME}/shared/u", "/hosts/h0/node/mirror/shared/u", "shared"),
    )


def test_each_task_is_planned_with_its_own_nodes_paths():
    toolkit = ToolkitSettings(kind="pytorch", python_script="$AZ_BATCHAI_INPUT_DATA/train.py", process_count=2)
    job, nodes = _job(toolkit), [_node(0), _node(1)]
    planned = plan_on_nodes(plan_tasks, job, nodes, _mirror_of)
    assert [plan.name for plan, _ in planned] == [plan.name for plan in plan_tasks(job, nodes)]
    for plan, found in planned:
        mirror = f"/hosts/h{plan.node_index}/node/mirror"
        assert f"{mirror}/datastores/ws/default/sets/mnist/train.py" in plan.command
        assert plan.env["AZ_BATCHAI_INPUT_DATA"] == f"{mirror}/datastores/ws/default/sets/mnist"
        assert plan.env["AZ_BATCHAI_STDOUTERR_DIR"].startswith(mirror + "/")
        assert HOME not in plan.command and not [v for v in plan.env.values() if HOME in v]
        assert {d.on_node for d in found if d.kind == "shared"} == {f"{mirror}/shared/u"}


def test_nodes_that_see_the_service_files_get_the_plan_as_it_is():
    job, nodes = (
        _job(
            ToolkitSettings(kind="custom", command_line="cat $AZ_BATCHAI_INPUT_DATA/x"),
            job_preparation="ls $AZ_BATCHAI_INPUT_DATA",
        ),
        [_node(0), _node(1)],
    )
    assert plan_on_nodes(plan_job_preparation, job, nodes, None) == [
        (plan, ()) for plan in plan_job_preparation(job, nodes)
    ]
