/**
 * One experiment in the main area: its runs in a table sortable by any parameter or metric, the
 * curves of the runs the user ticks overlaid, its sweeps (see sweepview.ts), and TensorBoard over
 * all of its runs. Service events about the experiment refresh it; a slow poll covers a lost stream.
 */
import { Widget } from '@lumino/widgets';

import { BatchAIClient, ExperimentKey, JobKey } from './api';
import { overlayChart, parallelChart } from './chart';
import { CurveCache } from './curves';
import { button, h, replaceChildren, stateBadge } from './dom';
import { LiveUpdates, ServiceEvent } from './live';
import {
  ACTIVE_JOB_STATES,
  ACTIVE_SWEEP_STATES,
  Run,
  Sweep,
  Trial,
  formatRunValue,
  parallelCoordinates,
  runColumns,
  runValue,
  sortRuns,
  trialIsLive
} from './model';
import { messageOf } from './panel';
import { sweepSection } from './sweepview';

const ACTIVE_POLL_MS = 2000;
const IDLE_POLL_MS = 15000;

export interface ExperimentViewActions {
  openJob(job: JobKey): void;
  openTensorBoard(experiment: ExperimentKey): void;
}

export class ExperimentView extends Widget {
  private runs: Run[] = [];
  private sweeps: Sweep[] = [];
  private trials: Trial[] = [];
  private sortKey = 'name';
  private descending = false;
  private sortChosen = false;
  private readonly selected = new Set<string>();
  private metric = '';
  private sweepName = '';
  private readonly curves: CurveCache;
  private readonly live: LiveUpdates;
  private timer = 0;
  private loading: Promise<void> | null = null;
  private loadAgain = false;

  private readonly errorLine = h('div', { className: 'bai-Error', role: 'alert', hidden: true });
  private readonly statusLine = h('div', { className: 'bai-Status', role: 'status' });
  private readonly runTable = h('table', { className: 'bai-Table bai-Runs', 'aria-label': 'Runs' });
  private readonly metricSelect = h('select', { className: 'bai-Select', 'aria-label': 'Metric to compare' });
  private readonly compareArea = h('div', { className: 'bai-ChartArea', 'aria-label': 'Compared runs' });
  private readonly parallelArea = h('div', { className: 'bai-ChartArea', 'aria-label': 'Parameters against the metric' });
  private readonly sweepSelect = h('select', { className: 'bai-Select', 'aria-label': 'Sweep' });
  private readonly sweepArea = h('div', { className: 'bai-SweepArea' });

  constructor(
    private readonly client: BatchAIClient,
    readonly key: ExperimentKey,
    private readonly actions: ExperimentViewActions
  ) {
    super();
    this.id = `batchai-experiment-${key.workspace}-${key.experiment}`;
    this.addClass('bai-ExperimentView');
    this.title.label = `Experiment ${key.experiment}`;
    this.title.caption = `Batch AI experiment ${key.workspace}/${key.experiment}: runs and sweeps`;
    this.title.closable = true;
    this.curves = new CurveCache(client, key);
    this.metricSelect.addEventListener('change', () => {
      this.metric = this.metricSelect.value;
      void this.renderComparison();
    });
    this.sweepSelect.addEventListener('change', () => {
      this.sweepName = this.sweepSelect.value;
      this.refresh();
    });
    this.node.append(
      h(
        'header',
        { className: 'bai-Header' },
        h('h2', { className: 'bai-Title' }, `Experiment ${key.experiment}`),
        button('TensorBoard', `Open TensorBoard over experiment ${key.experiment}`, () => this.actions.openTensorBoard(this.key)),
        button('Refresh', 'Refresh runs and sweeps', () => this.refresh()),
        this.statusLine
      ),
      this.errorLine,
      h('section', { className: 'bai-Section', 'aria-label': 'Runs' }, h('h3', {}, 'Runs'), this.runTable),
      h(
        'section',
        { className: 'bai-Section', 'aria-label': 'Compare' },
        h('div', { className: 'bai-SectionHeader' }, h('h3', {}, 'Compare'), h('label', { className: 'bai-Field' }, 'Metric ', this.metricSelect)),
        this.compareArea,
        this.parallelArea
      ),
      h(
        'section',
        { className: 'bai-Section', 'aria-label': 'Sweeps' },
        h('div', { className: 'bai-SectionHeader' }, h('h3', {}, 'Sweeps'), this.sweepSelect),
        this.sweepArea
      )
    );
    this.live = new LiveUpdates(
      client.eventsUrl(),
      event => this.onServiceEvent(event),
      () => this.refresh(),
      status => (this.statusLine.textContent = status === 'live' ? 'Live' : status)
    );
    this.refresh();
  }

  private onServiceEvent(event: ServiceEvent): void {
    const workspace = !event.workspace || event.workspace === this.key.workspace;
    if (workspace && (!event.experiment || event.experiment === this.key.experiment)) {
      this.schedule(300);
    }
  }

  private schedule(delayMs: number): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.refresh(), delayMs);
  }

  /** Reloads runs and sweeps; concurrent calls coalesce into one more load. */
  refresh(): void {
    if (this.loading) {
      this.loadAgain = true;
      return;
    }
    this.loading = this.load().finally(() => {
      this.loading = null;
      if (this.loadAgain) {
        this.loadAgain = false;
        this.refresh();
      }
    });
  }

  private async load(): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    try {
      const [runs, sweeps] = await Promise.all([this.client.runs(this.key), this.client.sweeps(this.key)]);
      this.runs = runs;
      this.sweeps = sweeps;
      if (!this.sweepName || !sweeps.some(s => s.name === this.sweepName)) {
        this.sweepName = sweeps.length ? sweeps[sweeps.length - 1].name : '';
      }
      this.trials = this.sweepName ? await this.client.trials(this.key, this.sweepName) : [];
      this.chooseDefaults();
      this.renderRuns();
      this.renderMetricChoices();
      await Promise.all([this.renderComparison(), this.renderSweep()]);
      this.showError('');
    } catch (failure) {
      this.showError(`Could not load experiment ${this.key.experiment}: ${messageOf(failure)}`);
    }
    const active =
      this.runs.some(r => ACTIVE_JOB_STATES.includes(r.state)) || this.sweeps.some(s => ACTIVE_SWEEP_STATES.includes(s.state));
    this.schedule(active ? ACTIVE_POLL_MS : IDLE_POLL_MS);
  }

  /** Until the user picks: sort by the sweep's primary metric (best first), compare that metric. */
  private chooseDefaults(): void {
    const sweep = this.sweeps.find(s => s.name === this.sweepName);
    const metrics = this.metricNames();
    const primary = sweep?.primaryMetric.name ?? metrics[0];
    if (!this.metric || !metrics.includes(this.metric)) {
      this.metric = primary && metrics.includes(primary) ? primary : metrics[0] ?? '';
    }
    if (!this.sortChosen && this.metric) {
      const goal = sweep?.primaryMetric.name === this.metric ? sweep.primaryMetric.goal : 'minimize';
      this.sortKey = `metric:${this.metric}.final`;
      this.descending = goal === 'maximize';
    }
  }

  private metricNames(): string[] {
    return [...new Set(this.runs.flatMap(run => Object.keys(run.metrics)))].sort();
  }

  private goals(): Record<string, 'minimize' | 'maximize'> {
    return Object.fromEntries(this.sweeps.map(s => [s.primaryMetric.name, s.primaryMetric.goal]));
  }

  private renderRuns(): void {
    const columns = runColumns(this.runs, this.goals());
    const header = h(
      'tr',
      {},
      h('th', { scope: 'col' }, 'Compare'),
      ...columns.map(column => {
        const sorted = column.key === this.sortKey;
        const th = h(
          'th',
          { scope: 'col', 'data-column': column.key, 'aria-sort': sorted ? (this.descending ? 'descending' : 'ascending') : 'none' },
          button(`${column.label}${sorted ? (this.descending ? ' ▼' : ' ▲') : ''}`, `Sort runs by ${column.label}`, () => this.sortBy(column.key), 'bai-SortButton')
        );
        return th;
      })
    );
    const body = h('tbody');
    if (!this.runs.length) {
      body.append(h('tr', { className: 'bai-Empty' }, h('td', { colspan: columns.length + 1 }, 'No runs yet: submit a job or a sweep to this experiment.')));
    }
    for (const run of sortRuns(this.runs, this.sortKey, this.descending)) {
      const tick = h('input', { type: 'checkbox', 'aria-label': `Compare run ${run.name}`, checked: this.selected.has(run.name) });
      tick.addEventListener('change', () => {
        if (tick.checked) {
          this.selected.add(run.name);
        } else {
          this.selected.delete(run.name);
        }
        void this.renderComparison();
      });
      body.append(
        h(
          'tr',
          { 'data-run': run.name, 'data-state': run.state, 'data-pruned': run.pruned, className: run.pruned ? 'bai-Greyed' : '' },
          h('td', {}, tick),
          ...columns.map(column => {
            const value = runValue(run, column.key);
            if (column.key === 'name') {
              const open = h('a', { href: '#', className: 'bai-Link', 'aria-label': `Open job ${run.name}` }, run.name);
              open.addEventListener('click', event => {
                event.preventDefault();
                this.actions.openJob({ ...this.key, name: run.name });
              });
              return h('td', {}, open);
            }
            if (column.key === 'state') {
              return h('td', {}, stateBadge(run.pruned ? 'pruned' : run.state));
            }
            return h('td', { className: 'bai-Number', 'data-column': column.key }, formatRunValue(column.key, value));
          })
        )
      );
    }
    replaceChildren(this.runTable, h('thead', {}, header), body);
  }

  private sortBy(key: string): void {
    this.descending = key === this.sortKey ? !this.descending : false;
    this.sortKey = key;
    this.sortChosen = true;
    this.renderRuns();
  }

  private renderMetricChoices(): void {
    const names = this.metricNames();
    replaceChildren(this.metricSelect, ...names.map(n => h('option', { value: n }, n)));
    this.metricSelect.value = this.metric;
  }

  private async renderComparison(): Promise<void> {
    this.renderParallel();
    const chosen = this.runs.filter(run => this.selected.has(run.name));
    if (!chosen.length || !this.metric) {
      replaceChildren(this.compareArea, h('p', { className: 'bai-Hint' }, 'Tick runs in the table to overlay their curves here.'));
      return;
    }
    const curves = await this.curves.curves(this.metric, new Map(chosen.map(run => [run.name, ACTIVE_JOB_STATES.includes(run.state)])));
    const lines = chosen.map(run => ({ label: run.name, points: curves.get(run.name) ?? [], greyed: run.pruned }));
    replaceChildren(this.compareArea, overlayChart(this.metric, lines));
  }

  /** Every run's parameters against the compared metric (pruned runs greyed). */
  private renderParallel(): void {
    const withMetric = this.runs.filter(run => this.metric in run.metrics);
    if (withMetric.length < 2) {
      replaceChildren(this.parallelArea);
      return;
    }
    const { axes, lines } = parallelCoordinates(withMetric, this.metric, this.goals()[this.metric] ?? 'minimize');
    replaceChildren(this.parallelArea, axes.length > 1 ? parallelChart(axes, lines) : null);
  }

  private async renderSweep(): Promise<void> {
    replaceChildren(this.sweepSelect, ...this.sweeps.map(s => h('option', { value: s.name }, s.name)));
    this.sweepSelect.value = this.sweepName;
    this.sweepSelect.hidden = this.sweeps.length < 2;
    const sweep = this.sweeps.find(s => s.name === this.sweepName);
    if (!sweep) {
      replaceChildren(this.sweepArea, h('p', { className: 'bai-Hint' }, 'No sweeps in this experiment. Start one with %%batchai_sweep or `batchai sweep create`.'));
      return;
    }
    const curves = await this.curves.curves(sweep.primaryMetric.name, new Map(this.trials.map(t => [t.job, trialIsLive(t)])));
    replaceChildren(
      this.sweepArea,
      sweepSection(sweep, this.trials, curves, {
        openJob: job => this.actions.openJob({ ...this.key, name: job }),
        cancel: name => void this.cancel(name)
      })
    );
  }

  private async cancel(sweep: string): Promise<void> {
    try {
      await this.client.cancelSweep(this.key, sweep);
    } catch (failure) {
      this.showError(`Cancel ${sweep}: ${messageOf(failure)}`);
    }
    this.refresh();
  }

  private showError(message: string): void {
    this.errorLine.textContent = message;
    this.errorLine.hidden = !message;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.live.dispose();
    window.clearTimeout(this.timer);
    super.dispose();
  }
}
