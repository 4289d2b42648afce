/**
 * The left-sidebar panel: every cluster and job of a workspace, live, with their actions.
 * Whoever started a job (notebook, terminal, CLI), it shows here.
 */
import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ApiError, BatchAIClient, ExperimentKey, JobKey } from './api';
import { button, h, replaceChildren, stateBadge } from './dom';
import { confirmTerminate } from './confirm';
import { LiveUpdates, ServiceEvent } from './live';
import { NODE_LOAD_POLL_MS, nodeLoadTable, renderNodeLoads } from './nodeload';
import {
  Cluster,
  ClusterNode,
  Job,
  JOB_STATES,
  JobFilter,
  experimentsOf,
  filterJobs,
  isActive,
  jobDuration,
  jobOutcome,
  nodeCountsSummary,
  resizeSettings,
  scaleSummary,
  sortJobs
} from './model';

const SAFETY_REFRESH_MS = 10000;

export interface PanelActions {
  openJob(job: JobKey): void;
  openExperiment(experiment: ExperimentKey): void;
  newCluster(workspace: string): void;
}

export class BatchAIPanel extends Widget {
  workspace = 'default';
  private clusters: Cluster[] = [];
  private jobs: Job[] = [];
  private filter: JobFilter = { state: '', experiment: '' };
  private readonly live: LiveUpdates;
  private refreshTimer = 0;
  private safetyTimer = 0;
  private clockTimer = 0;
  private nodeTimer = 0;
  private readingNodes = false;
  private refreshing: Promise<void> | null = null;
  private refreshAgain = false;

  private readonly statusLine = h('div', { className: 'bai-Status', role: 'status', 'aria-live': 'polite' });
  private readonly errorLine = h('div', { className: 'bai-Error', role: 'alert', hidden: true });
  private readonly workspaceSelect = h('select', { className: 'bai-Select', 'aria-label': 'Workspace' });
  private readonly clusterBody = h('tbody');
  private readonly jobBody = h('tbody');
  private readonly nodeLoads = nodeLoadTable('Nodes');
  private readonly stateSelect = h('select', { className: 'bai-Select', 'aria-label': 'Filter jobs by state' });
  private readonly experimentSelect = h('select', { className: 'bai-Select', 'aria-label': 'Filter jobs by experiment' });
  private readonly compareButton = button('Compare runs', 'Compare the runs of the chosen experiment', () =>
    this.actions.openExperiment({ workspace: this.workspace, experiment: this.filter.experiment })
  );

  constructor(
    readonly client: BatchAIClient,
    private readonly actions: PanelActions
  ) {
    super();
    this.id = 'batchai-panel';
    this.addClass('bai-Panel');
    this.title.caption = 'Batch AI: clusters and jobs';
    this.build();
    this.live = new LiveUpdates(
      client.eventsUrl(),
      event => this.onServiceEvent(event),
      () => this.scheduleRefresh(0),
      status => this.showStatus(status)
    );
    this.safetyTimer = window.setInterval(() => this.scheduleRefresh(0), SAFETY_REFRESH_MS);
    this.clockTimer = window.setInterval(() => this.tickDurations(), 1000);
    this.nodeTimer = window.setInterval(() => void this.loadNodes(), NODE_LOAD_POLL_MS);
    void this.refresh();
  }

  private build(): void {
    this.workspaceSelect.append(h('option', { value: 'default' }, 'default'));
    this.workspaceSelect.addEventListener('change', () => {
      this.workspace = this.workspaceSelect.value;
      void this.refresh();
    });
    this.stateSelect.append(h('option', { value: '' }, 'all states'), ...JOB_STATES.map(s => h('option', { value: s }, s)));
    this.stateSelect.addEventListener('change', () => {
      this.filter.state = this.stateSelect.value;
      this.renderJobs();
    });
    this.experimentSelect.addEventListener('change', () => {
      this.filter.experiment = this.experimentSelect.value;
      this.compareButton.disabled = !this.filter.experiment;
      this.renderJobs();
    });
    this.node.append(
      h(
        'header',
        { className: 'bai-Header' },
        h('h2', { className: 'bai-Title' }, 'Batch AI'),
        h('label', { className: 'bai-Field' }, 'Workspace ', this.workspaceSelect),
        button('Refresh', 'Refresh clusters and jobs', () => void this.refresh()),
        this.statusLine
      ),
      this.errorLine,
      h(
        'section',
        { className: 'bai-Section', 'aria-label': 'Clusters' },
        h(
          'div',
          { className: 'bai-SectionHeader' },
          h('h3', {}, 'Clusters'),
          button('New cluster…', 'Create a cluster', () => this.actions.newCluster(this.workspace))
        ),
        h(
          'table',
          { className: 'bai-Table', 'aria-label': 'Clusters' },
          h('thead', {}, h('tr', {}, ...['Cluster', 'Nodes', 'State'].map(c => h('th', { scope: 'col' }, c)))),
          this.clusterBody
        )
      ),
      h('section', { className: 'bai-Section', 'aria-label': 'Nodes' }, h('h3', {}, 'Nodes'), this.nodeLoads.table),
      h(
        'section',
        { className: 'bai-Section', 'aria-label': 'Jobs' },
        h(
          'div',
          { className: 'bai-SectionHeader' },
          h('h3', {}, 'Jobs'),
          h('label', { className: 'bai-Field' }, 'State ', this.stateSelect),
          h('label', { className: 'bai-Field' }, 'Experiment ', this.experimentSelect),
          this.compareButton
        ),
        h(
          'table',
          { className: 'bai-Table', 'aria-label': 'Jobs' },
          h(
            'thead',
            {},
            h('tr', {}, ...['Job', 'State', 'Time', 'Exit'].map(c => h('th', { scope: 'col' }, c)))
          ),
          this.jobBody
        )
      )
    );
  }

  private onServiceEvent(event: ServiceEvent): void {
    if (!event.workspace || event.workspace === this.workspace) {
      this.scheduleRefresh(150);
    }
  }

  /** The cluster a new job cell names: the only one, or the first with nodes up, or the first. */
  defaultCluster(): string | undefined {
    const up = this.clusters.find(c => c.nodeStateCounts.idleNodeCount + c.nodeStateCounts.runningNodeCount > 0);
    return (this.clusters.length === 1 ? this.clusters[0] : up ?? this.clusters[0])?.name;
  }

  scheduleRefresh(delayMs: number): void {
    window.clearTimeout(this.refreshTimer);
    this.refreshTimer = window.setTimeout(() => void this.refresh(), delayMs);
  }

  /** Reloads clusters and jobs; concurrent calls coalesce into one more run. */
  async refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = this.load();
    try {
      await this.refreshing;
    } finally {
      this.refreshing = null;
    }
    if (this.refreshAgain) {
      this.refreshAgain = false;
      await this.refresh();
    }
  }

  private async load(): Promise<void> {
    try {
      const [workspaces, clusters, jobs] = await Promise.all([
        this.client.workspaces(),
        this.client.clusters(this.workspace),
        this.client.jobs(this.workspace)
      ]);
      this.clusters = clusters;
      this.jobs = sortJobs(jobs);
      this.renderWorkspaces(workspaces.map(w => w.name));
      this.renderClusters();
      void this.loadNodes();
      this.renderExperiments();
      this.renderJobs();
      this.showError('');
    } catch (failure) {
      this.showError(`Could not load clusters and jobs: ${messageOf(failure)}`);
    }
  }

  showError(message: string): void {
    this.errorLine.textContent = message;
    this.errorLine.hidden = !message;
  }

  private showStatus(status: string): void {
    this.statusLine.textContent = status === 'live' ? 'Live' : status;
    this.statusLine.dataset.live = String(status === 'live');
  }

  private renderWorkspaces(names: string[]): void {
    const all = [...new Set(['default', ...names, this.workspace])].sort();
    const current = [...this.workspaceSelect.options].map(o => o.value);
    if (all.join('\n') !== current.join('\n')) {
      replaceChildren(this.workspaceSelect, ...all.map(name => h('option', { value: name }, name)));
    }
    this.workspaceSelect.value = this.workspace;
  }

  private renderClusters(): void {
    if (!this.clusters.length) {
      replaceChildren(this.clusterBody, emptyRow(3, 'No clusters yet. Create one with "New cluster…".'));
      return;
    }
    replaceChildren(
      this.clusterBody,
      ...this.clusters.map(cluster =>
        h(
          'tr',
          { 'data-cluster': cluster.name },
          h(
            'td',
            {},
            h('div', { className: 'bai-Name', title: cluster.name }, cluster.name),
            h('div', { className: 'bai-Detail' }, `${cluster.backend} · ${scaleSummary(cluster.properties.scaleSettings)}`),
            h(
              'div',
              { className: 'bai-Actions' },
              button('Resize', `Resize cluster ${cluster.name}`, () => void this.resizeCluster(cluster)),
              button('Delete', `Delete cluster ${cluster.name}`, () => void this.deleteCluster(cluster), 'bai-Danger')
            )
          ),
          h('td', { className: 'bai-Nodes' }, nodeCountsSummary(cluster.nodeStateCounts)),
          h('td', {}, stateBadge(cluster.errors.length ? 'error' : cluster.allocationState))
        )
      )
    );
  }

  /** Every node of the workspace's clusters with its live load; skipped while the panel is hidden. */
  private async loadNodes(): Promise<void> {
    if (this.readingNodes || !this.isVisible) {
      return;
    }
    this.readingNodes = true;
    try {
      const clusters = this.clusters.filter(cluster => cluster.currentNodeCount > 0);
      const lists = await Promise.all(clusters.map(cluster => this.client.clusterNodes(this.workspace, cluster.name).catch((): ClusterNode[] => [])));
      const rows = lists.flatMap((nodes, i) => nodes.map(node => ({ node, cluster: clusters[i].name })));
      renderNodeLoads(this.nodeLoads.body, rows, 'No nodes up.');
    } finally {
      this.readingNodes = false;
    }
  }

  private renderExperiments(): void {
    const names = experimentsOf(this.jobs);
    if (this.filter.experiment && !names.includes(this.filter.experiment)) {
      names.push(this.filter.experiment);
    }
    replaceChildren(this.experimentSelect, h('option', { value: '' }, 'all experiments'), ...names.map(n => h('option', { value: n }, n)));
    this.experimentSelect.value = this.filter.experiment;
    this.compareButton.disabled = !this.filter.experiment;
  }

  private renderJobs(): void {
    const shown = filterJobs(this.jobs, this.filter);
    if (!shown.length) {
      const why = this.jobs.length ? 'No job matches the filters.' : 'No jobs yet. Submit one with %%batchai_job or `batchai job create`.';
      replaceChildren(this.jobBody, emptyRow(4, why));
      return;
    }
    replaceChildren(this.jobBody, ...shown.map(job => this.jobRow(job)));
  }

  private jobRow(job: Job): HTMLTableRowElement {
    const key = { workspace: job.workspace, experiment: job.experiment, name: job.name };
    const open = h('a', { href: '#', className: 'bai-Link', 'aria-label': `Open job ${job.name}` }, job.name);
    open.addEventListener('click', event => {
      event.preventDefault();
      this.actions.openJob(key);
    });
    const exitCode = job.executionInfo.exitCode;
    return h(
      'tr',
      { 'data-job': job.name, 'data-experiment': job.experiment, 'data-state': job.executionState, 'data-outcome': jobOutcome(job) },
      h(
        'td',
        {},
        h('div', { className: 'bai-Name', title: job.name }, open),
        h('div', { className: 'bai-Detail', title: `${job.experiment} · ${job.cluster} · ${job.toolType}` }, this.experimentLink(job), ` · ${job.cluster} · ${job.toolType}`),
        h(
          'div',
          { className: 'bai-Actions' },
          isActive(job) && job.executionState !== 'terminating'
            ? button('Terminate', `Terminate job ${job.name}`, () => void this.terminateJob(key))
            : null,
          button('Delete', `Delete job ${job.name}`, () => void this.deleteJob(key), 'bai-Danger')
        )
      ),
      h('td', { title: job.waitingReason ?? '' }, stateBadge(jobOutcome(job))),
      h('td', { className: 'bai-Duration', 'data-running': job.executionState === 'running' }, jobDuration(job)),
      h('td', { className: 'bai-Exit' }, exitCode === null ? '' : String(exitCode))
    );
  }

  private experimentLink(job: Job): HTMLAnchorElement {
    const link = h('a', { href: '#', className: 'bai-Link', 'aria-label': `Compare the runs of experiment ${job.experiment}` }, job.experiment);
    link.addEventListener('click', event => {
      event.preventDefault();
      this.actions.openExperiment({ workspace: job.workspace, experiment: job.experiment });
    });
    return link;
  }

  /** Running jobs' durations count up every second, without re-rendering their rows. */
  private tickDurations(): void {
    for (const cell of this.jobBody.querySelectorAll<HTMLElement>('.bai-Duration[data-running]')) {
      const job = this.jobs.find(j => j.name === cell.parentElement?.dataset.job && j.experiment === cell.parentElement?.dataset.experiment);
      if (job) {
        cell.textContent = jobDuration(job);
      }
    }
  }

  private async resizeCluster(cluster: Cluster): Promise<void> {
    const auto = cluster.properties.scaleSettings.autoScale;
    const result = await InputDialog.getNumber({
      title: `Resize cluster ${cluster.name}`,
      label: auto ? 'Maximum nodes' : 'Nodes',
      value: auto ? auto.maximumNodeCount : cluster.targetNodeCount
    });
    if (!result.button.accept || result.value === null) {
      return;
    }
    const count = Number(result.value);
    if (!Number.isInteger(count) || count < 0) {
      this.showError(`Resize ${cluster.name}: ${result.value} is not a whole number of nodes, 0 or more`);
      return;
    }
    await this.act(`Resize ${cluster.name}`, () => this.client.resizeCluster(this.workspace, cluster.name, resizeSettings(cluster, count)));
  }

  private async deleteCluster(cluster: Cluster): Promise<void> {
    const active = this.jobs.filter(job => job.cluster === cluster.name && isActive(job)).length;
    const answer = await showDialog({
      title: `Delete cluster ${cluster.name}?`,
      body:
        `Its ${cluster.currentNodeCount} node(s) are released.` +
        (active ? ` Its ${active} queued or running job(s) fail (ClusterDeleted).` : ' No job of this workspace is waiting for it.'),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })],
      defaultButton: 0
    });
    if (answer.button.accept) {
      await this.act(`Delete ${cluster.name}`, () => this.client.deleteCluster(this.workspace, cluster.name));
    }
  }

  private async terminateJob(job: JobKey): Promise<void> {
    if (!(await confirmTerminate(job.name))) {
      return;
    }
    await this.act(`Terminate ${job.name}`, () => this.client.terminateJob(job));
  }

  private async deleteJob(job: JobKey): Promise<void> {
    const answer = await showDialog({
      title: `Delete job ${job.name}?`,
      body: 'The job is removed from the list; a running job is terminated first.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })],
      defaultButton: 0
    });
    if (answer.button.accept) {
      await this.act(`Delete ${job.name}`, () => this.client.deleteJob(job));
    }
  }

  /** Runs an action, shows its error (if any) in the panel, and refreshes. */
  async act(what: string, action: () => Promise<unknown>): Promise<boolean> {
    try {
      await action();
      this.showError('');
      return true;
    } catch (failure) {
      this.showError(`${what}: ${messageOf(failure)}`);
      return false;
    } finally {
      this.scheduleRefresh(0);
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.live.dispose();
    window.clearTimeout(this.refreshTimer);
    window.clearInterval(this.safetyTimer);
    window.clearInterval(this.clockTimer);
    window.clearInterval(this.nodeTimer);
    super.dispose();
  }
}

export function messageOf(failure: unknown): string {
  if (failure instanceof ApiError) {
    return failure.message;
  }
  return failure instanceof Error ? failure.message : String(failure);
}

function emptyRow(columns: number, text: string): HTMLTableRowElement {
  return h('tr', { className: 'bai-Empty' }, h('td', { colspan: columns }, text));
}
