"""ClusterMonitor: node counts by state, queue length, the nodes, and a resize control.

Its thread polls while the cluster changes (nodes preparing or leaving, jobs queued) and ends once
the cluster has been steady for a while, or when the widget is closed; resizing starts it again.
"""

from __future__ import annotations

from html import escape

import ipywidgets as widgets

from ...client import Client
from ...errors import BatchAIError
from .poller import Poller, own_client
from .render import Raw, badge, html_table, load_cells
from .snapshot import snapshot_box

NODE_STATES = ("idle", "running", "preparing", "unusable", "leaving")
STEADY_ROUNDS_BEFORE_STOP = 20


class ClusterMonitor(widgets.VBox):
    def __init__(self, workspace, name: str, start: bool = True, poll_min: float = 0.2, poll_max: float = 2.0):
        self.client: Client = own_client(workspace.client)
        self.workspace_name = workspace.name
        self.name = name
        self.header = widgets.HTML()
        self.counts_view = widgets.HTML()
        self.nodes_view = widgets.HTML()
        self.error_view = widgets.HTML()
        self.target = widgets.BoundedIntText(min=0, max=1000, description="nodes", layout=widgets.Layout(width="160px"))
        self.resize_button = widgets.Button(description="Resize", tooltip="set the cluster's node count (manual scale)")
        self.resize_button.on_click(lambda _button: self.resize(self.target.value))
        self.counts: dict[str, int] = {}
        self.queued = 0
        self.cluster: dict = {}
        self._steady_rounds = 0
        self._last_loads: list[list[str]] = []
        self._last = None
        super().__init__(
            [
                self.header,
                self.counts_view,
                widgets.HBox([self.target, self.resize_button]),
                self.nodes_view,
                self.error_view,
            ]
        )
        self.poller = Poller(self.step, self._show_error, poll_min, poll_max, name=f"batchai-cluster-{name}")
        if start:
            self._first_step()
            self.poller.start()

    def _first_step(self) -> None:
        """One round before the monitor is shown, so the snapshot kept in the notebook has the cluster."""
        try:
            self.step()
        except (BatchAIError, OSError) as failure:  # the poller retries; the widget shows why
            self._show_error(failure)

    def _repr_mimebundle_(self, **kwargs):
        """The widget, with a static snapshot of the cluster as it was shown: a notebook reopened without
        its kernel (nbconvert, GitHub's viewer) shows that instead of a missing widget."""
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        sections = (self.header.value, self.counts_view.value, self.nodes_view.value, self.error_view.value)
        bundle["text/html"] = snapshot_box(self.cluster.get("allocationState", "?"), list(sections))
        return bundle

    def step(self) -> tuple[bool, bool]:
        cluster = self.client.cluster(self.workspace_name, self.name)
        nodes = self.client.cluster_nodes(self.workspace_name, self.name)
        queued = [j for j in self.client.jobs(self.workspace_name, state="queued") if j["cluster"] == self.name]
        self.cluster, self.queued = cluster, len(queued)
        self.counts = {state: cluster["nodeStateCounts"][f"{state}NodeCount"] for state in NODE_STATES}
        snapshot = (
            cluster["allocationState"],
            tuple(sorted(self.counts.items())),
            self.queued,
            tuple((n["nodeId"], n["state"]) for n in nodes),
        )
        changed, self._last = snapshot != self._last, snapshot
        # Load changes all the time: it is shown while the monitor polls, but does not keep it polling.
        loads = [load_cells(n) for n in nodes]
        if changed or loads != self._last_loads:
            self._last_loads = loads
            self._render(nodes)
        self.error_view.value = ""
        busy = cluster["allocationState"] != "steady" or self.queued or self.counts["running"]
        self._steady_rounds = 0 if busy or changed else self._steady_rounds + 1
        return changed, self._steady_rounds >= STEADY_ROUNDS_BEFORE_STOP

    def _render(self, nodes: list[dict]) -> None:
        cluster = self.cluster
        allocation = cluster["allocationState"]
        self.header.value = (
            f"<b>cluster {escape(self.name)}</b> &nbsp; {escape(cluster['backend'])} &nbsp; "
            f"{badge('idle' if allocation == 'steady' else 'preparing', allocation)}"
            f" &nbsp; {cluster['currentNodeCount']} of {cluster['targetNodeCount']} nodes"
            f" &nbsp; queue: {self.queued} job(s)"
        )
        self.counts_view.value = " ".join(badge(state, f"{state} {count}") for state, count in self.counts.items())
        if not self.target.value and not self.resize_button.disabled:
            self.target.value = cluster["targetNodeCount"]
        self.nodes_view.value = html_table(
            ["node", "address", "state", "cpus", "gpus", "cpu use", "memory", "gpu use"],
            [
                [n["nodeId"], n["ipAddress"], Raw(badge(n["state"])), n["cpus"], n["gpus"], *load_cells(n)]
                for n in nodes
            ],
        )

    def resize(self, nodes: int) -> None:
        try:
            self.client.scale_cluster(self.workspace_name, self.name, {"manual": {"targetNodeCount": nodes}})
        except BatchAIError as failure:
            self._show_error(failure)
            return
        self._steady_rounds = 0
        self.poller.start()

    def _show_error(self, failure: Exception) -> None:
        self.error_view.value = f'<span style="color:#e53935">{escape(str(failure))}</span>'

    def close(self) -> None:
        self.poller.stop()
        self.client.close()
        super().close()
