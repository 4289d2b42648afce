"""The scheduler: a pure function of cluster, node and job state (and the clock) to decisions.

No I/O, no clock reads, no threads: the service gathers the views, calls `plan`, and carries out
the decisions it returns. The same input always gives the same decisions, in the same order.

Policy, per cluster:
- Queue order is (-priority, seq): larger priority first, FIFO within a priority.
- Gang allocation: a job starts only when `node_count` idle nodes are free; it gets exactly that
  many, lowest ids first.
- EASY backfill: the first job that cannot start (the head blocker) gets a reservation; jobs behind
  it start on idle nodes it does not need, or on its held nodes if they are sure to end before it
  could start (its shadow time). Later blockers get no reservation.
- Jobs that can never fit (node_count above a manual cluster's target or an auto cluster's
  maximum) stay queued but are skipped here, so they never hold nodes or block anyone; the service
  reports them to the user.
- Auto clusters scale up to demand (clamped to minimum..maximum) and shrink only by removing nodes
  idle for longer than `idle_seconds_before_scaledown`. Manual clusters are never resized here.
- Unusable nodes (failed setup) serve no job but are real machines: they count against an auto
  cluster's maximum, the cluster grows past them (up to the maximum) to reach its demand in usable
  nodes, and they are the first to go on scale-down once unusable for the idle timeout (which also
  paces the retries of a setup task that keeps failing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WALL_CLOCK_REASON = "MaxWallClockTimeExceeded"


@dataclass(frozen=True)
class NodeView:
    id: int
    cluster: str  # cluster key (e.g. "ws/name")
    state: str  # preparing | idle | running | leaving | unusable
    idle_since: float | None = None  # when it last became idle or unusable (for scale-down)


@dataclass(frozen=True)
class ClusterView:
    key: str
    mode: str  # "manual" | "auto"
    target: int  # manual target (ignored for auto)
    minimum: int = 0
    maximum: int = 0
    idle_seconds_before_scaledown: float = 300.0
    current_nodes: int = 0  # nodes that exist and are not leaving (any state)


@dataclass(frozen=True)
class QueuedJob:
    id: int
    cluster: str
    priority: int  # larger runs first (high=100, normal=0, low=-100, legacy ints -1000..1000)
    seq: int  # submission order; FIFO within a priority (lower first)
    node_count: int
    max_wall_clock: float  # seconds


@dataclass(frozen=True)
class RunningJob:
    id: int
    cluster: str
    node_ids: tuple[int, ...]
    started_at: float
    max_wall_clock: float


@dataclass(frozen=True)
class StartJob:
    job_id: int
    node_ids: tuple[int, ...]


@dataclass(frozen=True)
class KillJob:
    job_id: int
    reason: str
    message: str


@dataclass(frozen=True)
class ScaleCluster:
    cluster: str
    target: int  # the new node count
    reason: str


@dataclass(frozen=True)
class RemoveIdleNodes:
    cluster: str
    node_ids: tuple[int, ...]


Decision = StartJob | KillJob | ScaleCluster | RemoveIdleNodes


def order_queue(queued: Sequence[QueuedJob]) -> list[QueuedJob]:
    """All queued jobs in scheduling order; filtering by cluster gives that cluster's queue."""
    return sorted(queued, key=lambda job: (-job.priority, job.seq, job.id))


def queue_position(queued: Sequence[QueuedJob], job_id: int) -> int:
    """1-based position of `job_id` within its cluster's ordered queue; KeyError if not queued."""
    job = next((j for j in queued if j.id == job_id), None)
    if job is None:
        raise KeyError(f"job {job_id} is not queued")
    same_cluster = [j.id for j in order_queue(queued) if j.cluster == job.cluster]
    return same_cluster.index(job_id) + 1


def queue_positions(queued: Sequence[QueuedJob]) -> dict[int, int]:
    """`queue_position` of every queued job at once (one sort instead of one per job)."""
    positions: dict[int, int] = {}
    counts: dict[str, int] = {}
    for job in order_queue(queued):
        counts[job.cluster] = counts.get(job.cluster, 0) + 1
        positions[job.id] = counts[job.cluster]
    return positions


def plan(
    clusters: Sequence[ClusterView],
    nodes: Sequence[NodeView],
    queued: Sequence[QueuedJob],
    running: Sequence[RunningJob],
    now: float,
) -> list[Decision]:
    """The decisions for this instant: kills first, then per cluster (by key) starts and scaling."""
    decisions: list[Decision] = list(_kill_overdue(running, now))
    busy = {node_id for job in running for node_id in job.node_ids}
    for cluster in sorted(clusters, key=lambda c: c.key):
        decisions.extend(
            _plan_cluster(
                cluster,
                [n for n in nodes if n.cluster == cluster.key],
                order_queue([j for j in queued if j.cluster == cluster.key]),
                [r for r in running if r.cluster == cluster.key],
                busy,
                now,
            )
        )
    return decisions


def needs_queue(clusters: Sequence[ClusterView], nodes: Sequence[NodeView], running: Sequence[RunningJob]) -> bool:
    """False when `plan` decides the same whatever jobs are queued: every cluster is manual and
    has no idle node to start a job on (auto clusters size themselves by the queue). Lets the
    caller skip reading a long queue while every node is busy."""
    busy = {node_id for job in running for node_id in job.node_ids}
    keys = {cluster.key for cluster in clusters}
    return any(cluster.mode == "auto" for cluster in clusters) or any(
        n.state == "idle" and n.id not in busy and n.cluster in keys for n in nodes
    )


def format_duration(seconds: float) -> str:
    """H:MM:SS (hours unbounded), with fractional seconds only when there are any."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    fraction = round(seconds - whole, 3)
    return text + f"{fraction:.3f}".rstrip("0")[1:] if fraction else text


def _kill_overdue(running: Sequence[RunningJob], now: float) -> list[KillJob]:
    return [
        KillJob(
            job.id,
            WALL_CLOCK_REASON,
            f"Job exceeded its maximum wall-clock time of {format_duration(job.max_wall_clock)} and was killed",
        )
        for job in sorted(running, key=lambda r: r.id)
        if now - job.started_at >= job.max_wall_clock
    ]


def _plan_cluster(
    cluster: ClusterView,
    nodes: list[NodeView],
    queue: list[QueuedJob],
    running: list[RunningJob],
    busy: set[int],
    now: float,
) -> list[Decision]:
    idle = sorted({n.id for n in nodes if n.state == "idle" and n.id not in busy})
    auto = cluster.mode == "auto"
    # Nodes that may become idle at any moment (still preparing, or not yet created by an
    # auto-scale): treating them as arriving now keeps backfill from delaying the head job.
    soon = sum(1 for n in nodes if n.state == "preparing")
    if auto:
        soon += max(0, cluster.maximum - cluster.current_nodes)
    capacity = cluster.maximum if auto else cluster.target
    ends = [(r.started_at + r.max_wall_clock, r.id, len(r.node_ids)) for r in running]
    starts, held = _allocate(queue, idle, soon, capacity, ends, now)
    if not auto:
        return list(starts)
    return [*starts, *_autoscale(cluster, nodes, queue, running, starts, held, busy, now)]


def _allocate(
    queue: list[QueuedJob],
    idle: list[int],
    soon: int,
    capacity: int,
    ends: list[tuple[float, int, int]],
    now: float,
) -> tuple[list[StartJob], set[int]]:
    """Gang allocation with EASY backfill. Returns the starts and the ids held for the head."""
    free = list(idle)  # unreserved idle nodes, ascending
    held: list[int] = []  # idle nodes reserved for the head blocker, ascending
    reserved: set[int] = set()
    shadow: float | None = None
    head_found = False
    starts: list[StartJob] = []
    for job in queue:
        if not 1 <= job.node_count <= capacity:
            continue  # can never fit: kept queued, never blocks others
        if not head_found:
            if job.node_count <= len(free):
                starts.append(_start(job, _pop(free, job.node_count), now, ends))
                continue
            head_found = True
            shadow, hold = _reservation(job.node_count, len(free), soon, ends, now)
            held = _pop(free, hold)
            reserved = set(held)
            continue
        if shadow is not None and now + job.max_wall_clock <= shadow and job.node_count <= len(held) + len(free):
            # Ends before the head could start, so it may borrow held nodes; it takes those
            # first, leaving unreserved nodes to jobs that run past the shadow time.
            from_held = min(job.node_count, len(held))
            chosen = _pop(held, from_held) + _pop(free, job.node_count - from_held)
            starts.append(_start(job, chosen, now, ends))
        elif job.node_count <= len(free):
            starts.append(_start(job, _pop(free, job.node_count), now, ends))
    return starts, reserved


def _pop(pool: list[int], count: int) -> list[int]:
    """Remove and return the first `count` ids of `pool`."""
    taken = pool[:count]
    del pool[:count]
    return taken


def _start(job: QueuedJob, node_ids: list[int], now: float, ends: list[tuple[float, int, int]]) -> StartJob:
    # A job started now frees its nodes by its wall-clock limit; a later shadow counts on that.
    ends.append((now + job.max_wall_clock, job.id, job.node_count))
    return StartJob(job.id, tuple(node_ids))


def _reservation(
    need: int, idle: int, soon: int, ends: list[tuple[float, int, int]], now: float
) -> tuple[float | None, int]:
    """(shadow time, idle nodes to hold) for a head job needing `need` nodes with `idle` free.

    The shadow is the earliest time enough nodes are sure to be free, each running job ending by
    its wall-clock limit; None when that never happens from what is known. The hold is
    min(idle, need) less the nodes running jobs free by the shadow (classic EASY: idle nodes the
    head will not need at its shadow time can take long backfill jobs).
    """
    shadow = now if idle + soon >= need else None
    freed = 0
    for end, _, count in sorted(ends):
        if shadow is not None and end > shadow:
            break
        freed += count
        if shadow is None and idle + soon + freed >= need:
            shadow = end
    if shadow is None:
        return None, min(idle, need)
    return shadow, min(idle, max(0, need - freed))


def _autoscale(
    cluster: ClusterView,
    nodes: list[NodeView],
    queue: list[QueuedJob],
    running: list[RunningJob],
    starts: list[StartJob],
    held: set[int],
    busy: set[int],
    now: float,
) -> list[Decision]:
    demand = sum(min(j.node_count, cluster.maximum) for j in queue)
    demand += sum(len(r.node_ids) for r in running)
    unusable = [n for n in nodes if n.state == "unusable"]
    wanted = max(cluster.minimum, min(cluster.maximum, demand))  # usable nodes
    target = min(cluster.maximum, wanted + len(unusable))
    if target > cluster.current_nodes:
        return [ScaleCluster(cluster.key, target, _scale_reason(cluster, demand, target, len(unusable)))]
    spare = cluster.current_nodes - max(cluster.minimum, demand)
    if spare <= 0:
        return []
    in_use = held | busy | {node_id for s in starts for node_id in s.node_ids}
    expired = sorted(
        (
            n
            for n in nodes
            if (n.state == "unusable" or (n.state == "idle" and n.id not in in_use))
            and n.idle_since is not None
            and now - n.idle_since >= cluster.idle_seconds_before_scaledown
        ),
        key=lambda n: (n.state != "unusable", n.idle_since, n.id),  # unusable, then longest idle first
    )[:spare]
    if not expired:
        return []
    return [RemoveIdleNodes(cluster.key, tuple(sorted(n.id for n in expired)))]


def _scale_reason(cluster: ClusterView, demand: int, target: int, unusable: int = 0) -> str:
    if demand < cluster.minimum:
        reason = f"Scaling up to {target} node(s) for the minimum of {cluster.minimum}"
    elif target < demand + unusable:
        reason = f"Scaling up to the maximum of {target} node(s); jobs need {demand}"
    else:
        reason = f"Scaling up to {target} node(s) for queued and running jobs"
    return reason + (f" ({unusable} unusable node(s) serve no job)" if unusable else "")
