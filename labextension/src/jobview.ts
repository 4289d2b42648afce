/**
 * One job in the main area: its state, tasks, a live tail of any task's log, output files to
 * download and a chart of the metrics it logs (log_metric → metrics.jsonl).
 */
import { Widget } from '@lumino/widgets';

import { BatchAIClient, ExperimentKey, JobKey } from './api';
import { metricCharts } from './chart';
import { button, h, replaceChildren, stateBadge } from './dom';
import { confirmTerminate } from './confirm';
import {
  FileEntry,
  Job,
  Task,
  appendTail,
  backoffSeconds,
  isActive,
  jobDuration,
  jobOutcome,
  parseMetrics,
  taskLabel,
  taskOutcome
} from './model';
import { NODE_LOAD_POLL_MS, nodeLoadTable, renderNodeLoads } from './nodeload';
import { messageOf } from './panel';

const POLL_MS = 1000;
const STDOUTERR = 'stdouterr';
const METRICS_FILE = 'metrics.jsonl';

/** What a job view can open beyond itself (the plugin wires these). */
export interface JobViewActions {
  openTensorBoard?(job: JobKey): void;
  openExperiment?(experiment: ExperimentKey): void;
}

/** A growing file read by offsets. */
class Tail {
  text = '';
  offset = 0;
  reading = false; // one read at a time: two from the same offset would show the text twice
  constructor(readonly path: string) {}
}

export class JobView extends Widget {
  private job: Job | null = null;
  private tasks: Task[] = [];
  private serviceLogs: string[] = [];
  private log: Tail | null = null;
  private logChosen = false;
  private metrics = new Tail(METRICS_FILE);
  private outputId = STDOUTERR;
  private folder = '.';
  private timer = 0;
  private polls = 0;
  private failures = 0;
  private finalPassDone = false;

  private readonly summary = h('div', { className: 'bai-JobSummary' });
  private readonly errorLine = h('div', { className: 'bai-Error', role: 'alert', hidden: true });
  private readonly taskBody = h('tbody');
  private readonly nodeLoads = nodeLoadTable('Job nodes');
  private nodesRead = 0;
  private readonly logSelect = h('select', { className: 'bai-Select', 'aria-label': 'Log file' });
  private readonly logText = h('pre', { className: 'bai-Log', 'aria-label': 'Log', tabindex: 0 });
  private readonly outputSelect = h('select', { className: 'bai-Select', 'aria-label': 'Output directory' });
  private readonly fileList = h('ul', { className: 'bai-Files', 'aria-label': 'Output files' });
  private readonly chartArea = h('div', { className: 'bai-ChartArea' });

  constructor(
    private readonly client: BatchAIClient,
    readonly key: JobKey,
    private readonly actions: JobViewActions = {}
  ) {
    super();
    this.id = `batchai-job-${key.workspace}-${key.experiment}-${key.name}`;
    this.addClass('bai-JobView');
    this.title.label = `Job ${key.name}`;
    this.title.caption = `Batch AI job ${key.workspace}/${key.experiment}/${key.name}`;
    this.title.closable = true;
    this.logSelect.addEventListener('change', () => {
      this.logChosen = true;
      this.log = new Tail(this.logSelect.value);
      this.logText.textContent = '';
      void this.readLog();
    });
    this.outputSelect.append(h('option', { value: STDOUTERR }, 'stdouterr'));
    this.outputSelect.addEventListener('change', () => {
      this.outputId = this.outputSelect.value;
      this.folder = '.';
      void this.loadFiles();
    });
    this.node.append(
      this.summary,
      this.errorLine,
      h(
        'section',
        { className: 'bai-Section', 'aria-label': 'Tasks' },
        h('h3', {}, 'Tasks'),
        h(
          'table',
          { className: 'bai-Table', 'aria-label': 'Tasks' },
          h('thead', {}, h('tr', {}, ...['Task', 'Phase', 'Node', 'State', 'Exit', 'Attempt'].map(c => h('th', { scope: 'col' }, c)))),
          this.taskBody
        )
      ),
      h('section', { className: 'bai-Section', 'aria-label': 'Job nodes' }, h('h3', {}, 'Nodes'), this.nodeLoads.table),
      h('section', { className: 'bai-Section', 'aria-label': 'Log' }, h('div', { className: 'bai-SectionHeader' }, h('h3', {}, 'Log'), this.logSelect), this.logText),
      h(
        'section',
        { className: 'bai-Section', 'aria-label': 'Output files' },
        h(
          'div',
          { className: 'bai-SectionHeader' },
          h('h3', {}, 'Files'),
          this.outputSelect,
          button('Refresh', 'Refresh the file list', () => void this.loadFiles())
        ),
        this.fileList
      ),
      h('section', { className: 'bai-Section', 'aria-label': 'Metrics' }, h('h3', {}, 'Metrics'), this.chartArea)
    );
    void this.poll();
  }

  private async poll(): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    try {
      const [job, tasks] = await Promise.all([this.client.job(this.key), this.client.tasks(this.key)]);
      this.job = job;
      this.tasks = tasks;
      this.renderTasks();
      this.renderOutputChoices();
      await Promise.all([this.readLog(), this.readMetrics(), this.readNodes()]);
      this.renderSummary();
      if (this.polls % 5 === 0 || !isActive(job)) {
        await Promise.all([this.loadFiles(), this.findServiceLogs()]);
      }
      this.showError('');
      this.failures = 0;
    } catch (failure) {
      this.showError(messageOf(failure));
      this.failures++;
    }
    this.polls++;
    const ended = this.job !== null && !isActive(this.job);
    if (ended && this.finalPassDone && !this.failures) {
      return; // nothing changes any more; Refresh reads again
    }
    this.finalPassDone = ended;
    // While the service answers with errors (restarting, job deleted), ask less and less often.
    const delay = this.failures ? backoffSeconds(this.failures - 1) * 1000 : POLL_MS;
    this.timer = window.setTimeout(() => void this.poll(), delay);
  }

  /** Starts polling again (after the job was re-run, or to re-read files). */
  refresh(): void {
    window.clearTimeout(this.timer);
    this.finalPassDone = false;
    void this.poll();
  }

  private renderSummary(): void {
    const job = this.job!;
    const info = job.executionInfo;
    const field = (label: string, value: string | Node) => h('div', { className: 'bai-Fact' }, h('span', { className: 'bai-FactLabel' }, label), value);
    replaceChildren(
      this.summary,
      h('h2', { className: 'bai-Title' }, job.name, ' ', stateBadge(jobOutcome(job))),
      job.failure ? h('p', { className: 'bai-Failure', role: 'alert', 'data-task': job.failure.task }, job.failure.headline) : null,
      h(
        'div',
        { className: 'bai-Facts' },
        field('Experiment', job.experiment),
        field('Cluster', job.cluster),
        field('Toolkit', job.toolType),
        field('Nodes', String(job.nodeCount)),
        field('Duration', jobDuration(job) || '—'),
        field('Exit code', info.exitCode === null ? '—' : String(info.exitCode)),
        job.queuePosition ? field('Queue position', String(job.queuePosition)) : null,
        job.waitingReason ? field('Waiting', job.waitingReason) : null
      ),
      info.errors.length ? h('ul', { className: 'bai-JobErrors' }, ...info.errors.map(e => h('li', {}, e.message ?? ''))) : null,
      h(
        'div',
        { className: 'bai-Actions' },
        isActive(job) && job.executionState !== 'terminating'
          ? button('Terminate', `Terminate job ${job.name}`, () => void this.terminate())
          : null,
        this.actions.openTensorBoard
          ? button('TensorBoard', `Open TensorBoard over job ${job.name}`, () => this.actions.openTensorBoard!(this.key))
          : null,
        this.actions.openExperiment
          ? button('Compare runs', `Compare the runs of experiment ${job.experiment}`, () =>
              this.actions.openExperiment!({ workspace: job.workspace, experiment: job.experiment })
            )
          : null,
        button('Refresh', 'Refresh this job', () => this.refresh())
      )
    );
  }

  private renderTasks(): void {
    if (!this.tasks.length) {
      replaceChildren(this.taskBody, h('tr', { className: 'bai-Empty' }, h('td', { colspan: 6 }, 'No task has started yet.')));
    } else {
      replaceChildren(
        this.taskBody,
        ...this.tasks.map(task => this.taskRow(task))
      );
    }
    const files = [...new Set([...this.tasks.flatMap(task => [task.stdout, task.stderr]), ...this.serviceLogs].filter(Boolean))];
    const current = [...this.logSelect.options].map(o => o.value);
    if (files.join('\n') !== current.join('\n')) {
      const selected = this.log?.path ?? files[0];
      replaceChildren(this.logSelect, ...files.map(f => h('option', { value: f }, f)));
      this.logSelect.value = selected;
    }
    // Until the user picks a log, show the failing task's stderr once a task failed; else follow the job's
    // own output: the first main task (master, rank 0) once it exists, the preparation before it until then.
    const main = this.tasks.find(task => task.phase === 'main') ?? this.tasks[0];
    const preferred = this.job?.failure?.log || main?.stdout || files[0];
    if (!this.logChosen && preferred && this.log?.path !== preferred) {
      this.showLog(preferred);
    }
  }

  /** A task's row: a failed task's badge is red; a click opens its log, a failed task's stderr. */
  private taskRow(task: Task): HTMLTableRowElement {
    const outcome = taskOutcome(task);
    const log = outcome === 'failed' ? task.stderr : task.stdout;
    const open = () => {
      this.logChosen = true;
      this.showLog(log);
      this.logText.scrollIntoView({ block: 'nearest' });
    };
    const link = h('a', { href: '#', className: 'bai-Link', 'aria-label': `Open the log of ${taskLabel(task)} (${log})` }, task.name);
    link.addEventListener('click', event => {
      event.preventDefault();
      event.stopPropagation();
      open();
    });
    const row = h(
      'tr',
      { 'data-task': task.name, 'data-outcome': outcome, className: 'bai-TaskRow', title: `Open ${log}` },
      h('td', {}, link),
      h('td', {}, task.phase),
      h('td', {}, task.node),
      h('td', {}, stateBadge(outcome)),
      h('td', {}, task.exitCode === null ? '' : String(task.exitCode)),
      h('td', {}, String(task.attempt))
    );
    row.addEventListener('click', open);
    return row;
  }

  /** Tails `path` in the log section from its start. */
  private showLog(path: string): void {
    if (![...this.logSelect.options].some(o => o.value === path)) {
      this.logSelect.append(h('option', { value: path }, path));
    }
    this.logSelect.value = path;
    if (this.log?.path !== path) {
      this.log = new Tail(path);
      this.logText.textContent = '';
      void this.readLog();
    }
  }

  /** The job's nodes and their load, no more often than the service samples it; none once the job ended. */
  private async readNodes(): Promise<void> {
    const job = this.job!;
    if (!isActive(job)) {
      renderNodeLoads(this.nodeLoads.body, [], 'The job has ended; its nodes are released.');
      return;
    }
    if (Date.now() - this.nodesRead < NODE_LOAD_POLL_MS) {
      return;
    }
    this.nodesRead = Date.now();
    const nodes = await this.client.jobNodes(this.key);
    renderNodeLoads(this.nodeLoads.body, nodes.map(node => ({ node })), 'No node yet.');
  }

  /** The service's own logs of the job (execution.log, execution-<node>.log, job preparation), for the log choice. */
  private async findServiceLogs(): Promise<void> {
    const entries = await this.client.files(this.key, STDOUTERR, '.');
    const taskFiles = new Set(this.tasks.flatMap(task => [task.stdout, task.stderr]));
    this.serviceLogs = entries
      .filter(e => e.fileType === 'file' && /\.(log|txt)$/.test(e.name) && !taskFiles.has(e.path))
      .map(e => e.path);
    this.renderTasks();
  }

  private renderOutputChoices(): void {
    const ids = [STDOUTERR, ...(this.job?.properties.outputDirectories ?? []).map(d => d.id)];
    if (ids.length !== this.outputSelect.options.length) {
      replaceChildren(this.outputSelect, ...ids.map(id => h('option', { value: id }, id)));
      this.outputSelect.value = this.outputId;
    }
  }

  private async readLog(): Promise<void> {
    const tail = this.log;
    if (!tail || tail.reading) {
      return;
    }
    tail.reading = true;
    let chunk;
    try {
      chunk = await this.client.readFile(this.key, STDOUTERR, tail.path, tail.offset);
    } finally {
      tail.reading = false;
    }
    if (tail !== this.log || !chunk.text) {
      return; // another file was chosen meanwhile, or nothing new
    }
    tail.offset = chunk.nextOffset;
    tail.text = appendTail(tail.text, chunk.text);
    const atBottom = this.logText.scrollTop + this.logText.clientHeight >= this.logText.scrollHeight - 4;
    this.logText.textContent = tail.text;
    if (atBottom) {
      this.logText.scrollTop = this.logText.scrollHeight;
    }
  }

  private async readMetrics(): Promise<void> {
    const chunk = await this.client.readFile(this.key, STDOUTERR, METRICS_FILE, this.metrics.offset);
    if (chunk.text) {
      // keep only whole lines; a partial last line is read again next time
      const whole = chunk.text.lastIndexOf('\n') + 1;
      this.metrics.text += chunk.text.slice(0, whole);
      this.metrics.offset += new Blob([chunk.text.slice(0, whole)]).size;
    }
    const series = parseMetrics(this.metrics.text);
    replaceChildren(
      this.chartArea,
      series.size ? metricCharts(series) : h('p', { className: 'bai-Hint' }, 'No metrics yet. A job logs them with batchai_jupyter.runtime.log_metric(name, value).')
    );
  }

  private async loadFiles(): Promise<void> {
    let entries: FileEntry[];
    try {
      entries = await this.client.files(this.key, this.outputId, this.folder);
    } catch (failure) {
      replaceChildren(this.fileList, h('li', { className: 'bai-Hint' }, messageOf(failure)));
      return;
    }
    const items: HTMLElement[] = [];
    if (this.folder !== '.') {
      items.push(h('li', {}, button('..', 'Up one folder', () => this.openFolder(parentOf(this.folder)))));
    }
    for (const entry of entries) {
      if (entry.fileType === 'directory') {
        items.push(h('li', { 'data-file': entry.path }, button(`${entry.name}/`, `Open folder ${entry.name}`, () => this.openFolder(entry.path), 'bai-Link')));
      } else {
        items.push(
          h(
            'li',
            { 'data-file': entry.path },
            h('span', { className: 'bai-FileName' }, entry.name),
            h('span', { className: 'bai-FileSize' }, formatSize(entry.contentLength)),
            this.downloadLink(entry)
          )
        );
      }
    }
    replaceChildren(this.fileList, ...(items.length ? items : [h('li', { className: 'bai-Hint' }, 'No files yet.')]));
  }

  private openFolder(path: string): void {
    this.folder = path;
    void this.loadFiles();
  }

  /** A real link to the file (copy it, open it in a tab with Jupyter's cookie); a click downloads it with the session's auth. */
  private downloadLink(entry: FileEntry): HTMLAnchorElement {
    const href = this.client.absoluteUrl(entry.downloadUrl!);
    const link = h('a', { href, download: entry.name, className: 'bai-Link bai-Download', 'aria-label': `Download ${entry.name}` }, 'Download');
    if (!/^https?:/.test(entry.downloadUrl!)) {
      link.addEventListener('click', event => {
        event.preventDefault();
        void this.download(entry);
      });
    }
    return link;
  }

  private async download(entry: FileEntry): Promise<void> {
    try {
      await this.client.download(entry.downloadUrl!, entry.name);
    } catch (failure) {
      this.showError(`Download ${entry.name}: ${messageOf(failure)}`);
    }
  }

  private async terminate(): Promise<void> {
    if (!(await confirmTerminate(this.key.name))) {
      return;
    }
    try {
      await this.client.terminateJob(this.key);
    } catch (failure) {
      this.showError(`Terminate ${this.key.name}: ${messageOf(failure)}`);
    }
    this.refresh();
  }

  private showError(message: string): void {
    this.errorLine.textContent = message;
    this.errorLine.hidden = !message;
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }
}

function parentOf(path: string): string {
  const cut = path.replace(/\/+$/, '').lastIndexOf('/');
  return cut > 0 ? path.slice(0, cut) : '.';
}

function formatSize(bytes: number): string {
  if (bytes < 1024) {
    return `${bytes} B`;
  }
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
