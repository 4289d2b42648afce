/**
 * The panel's logic without the DOM: wire types, summaries, filters, the cluster form's spec and
 * metric series. Unit-tested in model.test.ts.
 */

export const JOB_STATES = ['queued', 'running', 'terminating', 'succeeded', 'failed'] as const;
export const ACTIVE_JOB_STATES = ['queued', 'running', 'terminating'];

export interface NodeStateCounts {
  preparingNodeCount: number;
  idleNodeCount: number;
  runningNodeCount: number;
  leavingNodeCount: number;
  unusableNodeCount: number;
}

export interface ScaleSettings {
  manual?: { targetNodeCount: number; nodeDeallocationOption?: string };
  autoScale?: { minimumNodeCount: number; maximumNodeCount: number; initialNodeCount?: number };
}

export interface Cluster {
  name: string;
  workspace: string;
  backend: string;
  allocationState: string;
  currentNodeCount: number;
  targetNodeCount: number;
  nodeStateCounts: NodeStateCounts;
  errors: { message?: string }[];
  properties: {
    vmSize: string;
    vmPriority: string;
    scaleSettings: ScaleSettings;
    idleSecondsBeforeScaledown: number;
  };
}

export interface Job {
  name: string;
  workspace: string;
  experiment: string;
  cluster: string;
  toolType: string;
  nodeCount: number;
  executionState: string;
  creationTime: string;
  queuePosition?: number;
  waitingReason?: string;
  executionInfo: { startTime: string | null; endTime: string | null; exitCode: number | null; errors: { code?: string; message?: string }[] };
  properties: { outputDirectories?: { id: string }[] };
  /** A failed job's failure summary, computed by the service (core/failure_summary.py). */
  failure?: JobFailure;
}

/** Which task of a failed job failed first, its stderr (as the files API names it) and the line that says why. */
export interface JobFailure {
  task: string;
  label: string;
  node: string | null;
  exitCode: number;
  log: string;
  line: string | null;
  headline: string;
}

export interface Task {
  name: string;
  role: string;
  index: number | null;
  attempt: number;
  phase: string;
  node: string;
  state: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  startTime?: string | null;
  endTime?: string | null;
}

/** A task's badge: an ended task's exit code decides, so a task that exited non-zero reads "failed". */
export function taskOutcome(task: Task): string {
  if (task.state === 'exited' && task.exitCode !== null) {
    return task.exitCode === 0 ? 'succeeded' : 'failed';
  }
  return task.state;
}

/** "rank 1", "master 0", or "job preparation on node-0". */
export function taskLabel(task: Task): string {
  if (task.role === 'prep') {
    return `job preparation on ${task.node || task.name}`;
  }
  return task.index !== null && task.index !== undefined ? `${task.role} ${task.index}` : task.name;
}

export interface FileEntry {
  name: string;
  path: string;
  fileType: 'file' | 'directory';
  contentLength: number;
  downloadUrl?: string;
}

/** The error code of a job its user terminated (POST .../terminate). */
export const TERMINATED_BY_USER = 'JobTerminated';

/** What a job's badge says: a job the user terminated reads "terminated", not "failed". */
export function jobOutcome(job: Job): string {
  const byUser = job.executionInfo.errors.some(error => error.code === TERMINATED_BY_USER);
  return job.executionState === 'failed' && byUser ? 'terminated' : job.executionState;
}

/** CPU and memory use, as the service reports a node's (or its machine's, or a GPU's) figures. */
export interface Usage {
  cpuPercent?: number | null;
  utilizationPercent?: number | null;
  memoryUsedBytes: number | null;
  memoryTotalBytes: number | null;
}

/** A node's `load` (README "Node load"): null where the backend reads none or has no sample yet. */
export interface NodeLoad extends Usage {
  sampled: string;
  scope: 'node' | 'tasks';
  cpuPercent: number | null;
  machine: Usage | null;
  gpus: (Usage & { index: number })[] | null;
}

export interface ClusterNode {
  nodeId: string;
  state: string;
  jobId?: string | null;
  load: NodeLoad | null;
}

/** What a node's load shows when the service knows no value (no sample yet, a backend that reads none, no GPU). */
export const UNKNOWN_LOAD = '-';

function percentText(value: number | null | undefined): string {
  return value === null || value === undefined ? UNKNOWN_LOAD : `${Math.round(value)}%`;
}

function gibText(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(1);
}

function memoryOf(used: number | null | undefined, total: number | null | undefined): string {
  return used === null || used === undefined || total === null || total === undefined ? UNKNOWN_LOAD : `${gibText(used)}/${gibText(total)} GiB`;
}

/** "37%", or for nodes sharing one machine their tasks' share then the machine's: "37% (machine 100%)". */
export function cpuText(load: NodeLoad | null): string {
  if (!load) {
    return UNKNOWN_LOAD;
  }
  const own = percentText(load.cpuPercent);
  return load.machine ? `${own} (machine ${percentText(load.machine.cpuPercent)})` : own;
}

/** "2.1/23.5 GiB", or the tasks' resident memory then the machine's: "15 MiB (machine 2.1/23.5 GiB)". */
export function memoryText(load: NodeLoad | null): string {
  if (!load) {
    return UNKNOWN_LOAD;
  }
  if (!load.machine) {
    return memoryOf(load.memoryUsedBytes, load.memoryTotalBytes);
  }
  const used = load.memoryUsedBytes;
  const own = used === null ? UNKNOWN_LOAD : used >= 2 ** 30 ? `${gibText(used)} GiB` : `${Math.round(used / 2 ** 20)} MiB`;
  return `${own} (machine ${memoryOf(load.machine.memoryUsedBytes, load.machine.memoryTotalBytes)})`;
}

/** Each GPU's utilisation and memory: "0: 87% 40.0/79.6 GiB, 1: …". */
export function gpuText(load: NodeLoad | null): string {
  if (!load?.gpus?.length) {
    return UNKNOWN_LOAD;
  }
  return load.gpus.map(gpu => `${gpu.index}: ${percentText(gpu.utilizationPercent)} ${memoryOf(gpu.memoryUsedBytes, gpu.memoryTotalBytes)}`).join(', ');
}

/** "2 idle · 1 running" from a cluster's node counts, leaving out states with no node. */
export function nodeCountsSummary(counts: NodeStateCounts): string {
  const parts: string[] = [];
  for (const [key, label] of [
    ['preparingNodeCount', 'preparing'],
    ['idleNodeCount', 'idle'],
    ['runningNodeCount', 'running'],
    ['leavingNodeCount', 'leaving'],
    ['unusableNodeCount', 'unusable']
  ] as const) {
    if (counts[key] > 0) {
      parts.push(`${counts[key]} ${label}`);
    }
  }
  return parts.length ? parts.join(' · ') : 'no nodes';
}

/** "manual: 2 nodes" or "auto: 0–4 nodes". */
export function scaleSummary(scale: ScaleSettings): string {
  if (scale.autoScale) {
    return `auto: ${scale.autoScale.minimumNodeCount}–${scale.autoScale.maximumNodeCount} nodes`;
  }
  const target = scale.manual?.targetNodeCount ?? 0;
  return `manual: ${target} node${target === 1 ? '' : 's'}`;
}

/** "1:02:03", "4:05", "0:07": how long a job ran (or has run until `now`); "" when it never started. */
export function jobDuration(job: Job, now: number = Date.now()): string {
  const start = job.executionInfo.startTime;
  if (!start) {
    return '';
  }
  const end = job.executionInfo.endTime ? Date.parse(job.executionInfo.endTime) : now;
  return formatSeconds(Math.max(0, (end - Date.parse(start)) / 1000));
}

export function formatSeconds(seconds: number): string {
  if (seconds > 0 && seconds < 1) {
    return `${Math.max(seconds, 0.1).toFixed(1)} s`; // a job that ran 0.4 s did run
  }
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

export interface JobFilter {
  state: string; // '' for every state
  experiment: string; // '' for every experiment
}

export function filterJobs(jobs: Job[], filter: JobFilter): Job[] {
  return jobs.filter(
    job => (!filter.state || job.executionState === filter.state) && (!filter.experiment || job.experiment === filter.experiment)
  );
}

/** Newest first, so a job just submitted is at the top. */
export function sortJobs(jobs: Job[]): Job[] {
  return [...jobs].sort((a, b) => (a.creationTime < b.creationTime ? 1 : a.creationTime > b.creationTime ? -1 : 0));
}

/** The jobs whose name, experiment, cluster or state contain every word of `query` (any case). */
export function matchJobs(jobs: Job[], query: string): Job[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return jobs.filter(job => {
    const text = [job.name, job.experiment, job.cluster, jobOutcome(job)].join(' ').toLowerCase();
    return words.every(word => text.includes(word));
  });
}

export function experimentsOf(jobs: Job[]): string[] {
  return [...new Set(jobs.map(job => job.experiment))].sort();
}

export function isActive(job: Job): boolean {
  return ACTIVE_JOB_STATES.includes(job.executionState);
}

/** What the cluster form collects, as strings straight from its inputs. */
export interface ClusterFormValues {
  name: string;
  backend: string;
  scaleMode: 'manual' | 'auto';
  nodes: string;
  minNodes: string;
  maxNodes: string;
  idleSeconds: string;
  vmPriority: string;
  setupCommand: string;
  // ssh only: the hosts (comma or space separated, [user@]host[:port]), a default user, a private key on the service's machine
  hosts?: string;
  user?: string;
  keyFile?: string;
}

/** A compute backend as GET /backends lists it; the form offers the available ones. */
export interface BackendInfo {
  name: string;
  available: boolean;
  reason?: string;
}

/** The form fields a backend needs beyond the common ones. */
export const BACKEND_FIELDS: Record<string, (keyof ClusterFormValues)[]> = { ssh: ['hosts', 'user', 'keyFile'] };

export type ClusterRequest = { ok: true; name: string; spec: Record<string, unknown> } | { ok: false; error: string };

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** The native cluster spec for the form's values, or what is wrong with them (field and fix). */
export function clusterRequest(values: ClusterFormValues): ClusterRequest {
  const name = values.name.trim();
  if (!NAME_PATTERN.test(name)) {
    return { ok: false, error: 'Name: use 1–64 letters, digits, "-" or "_", starting with a letter or digit' };
  }
  const backend = values.backend.trim() || 'local';
  const spec: Record<string, unknown> = { backend, vmPriority: values.vmPriority || 'dedicated' };
  if (values.scaleMode === 'auto') {
    const min = wholeNumber(values.minNodes);
    const max = wholeNumber(values.maxNodes);
    if (min === null) {
      return { ok: false, error: 'Minimum nodes: enter a whole number, 0 or more' };
    }
    if (max === null || max < 1 || max < min) {
      return { ok: false, error: 'Maximum nodes: enter a whole number, at least 1 and at least the minimum' };
    }
    spec.minNodes = min;
    spec.maxNodes = max;
  } else {
    const nodes = wholeNumber(values.nodes);
    if (nodes === null) {
      return { ok: false, error: 'Nodes: enter a whole number, 0 or more' };
    }
    spec.nodeCount = nodes;
  }
  if (values.idleSeconds.trim()) {
    const idle = wholeNumber(values.idleSeconds);
    if (idle === null) {
      return { ok: false, error: 'Idle seconds before scale-down: enter a whole number, 0 or more' };
    }
    spec.idleSecondsBeforeScaledown = idle;
  }
  if (values.setupCommand.trim()) {
    spec.setupTask = values.setupCommand.trim();
  }
  if (backend === 'ssh') {
    const user = (values.user ?? '').trim();
    const hosts = (values.hosts ?? '').split(/[\s,]+/).filter(Boolean);
    if (!hosts.length) {
      return { ok: false, error: 'Hosts: give the machines to run on, e.g. "gpu1, alice@gpu2:2222"' };
    }
    const options: Record<string, unknown> = { hosts: hosts.map(host => (user && !host.includes('@') ? `${user}@${host}` : host)) };
    if ((values.keyFile ?? '').trim()) {
      options.keyFile = values.keyFile!.trim();
    }
    spec.backendOptions = options;
  }
  return { ok: true, name, spec };
}

function wholeNumber(text: string): number | null {
  const trimmed = text.trim();
  return /^\d{1,6}$/.test(trimmed) ? Number(trimmed) : null;
}

/** The scaleSettings a resize sends: a manual target for a manual cluster, a new maximum for an auto one. */
export function resizeSettings(cluster: Cluster, count: number): ScaleSettings {
  const auto = cluster.properties.scaleSettings.autoScale;
  if (auto) {
    return { autoScale: { minimumNodeCount: Math.min(auto.minimumNodeCount, count), maximumNodeCount: count } };
  }
  return { manual: { targetNodeCount: count } };
}

export interface MetricPoint {
  step: number;
  value: number;
}

/** Series by "name" (or "name (rank r)" when several ranks log it) from metrics.jsonl text. */
export function parseMetrics(text: string): Map<string, MetricPoint[]> {
  const records: { name: string; value: number; step: number; rank: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) {
      continue;
    }
    try {
      const record = JSON.parse(line);
      if (typeof record.name === 'string' && typeof record.value === 'number' && typeof record.step === 'number') {
        records.push({ name: record.name, value: record.value, step: record.step, rank: Number(record.rank) || 0 });
      }
    } catch {
      // a half-written last line: read again on the next poll
    }
  }
  const ranks = new Map<string, Set<number>>();
  for (const record of records) {
    ranks.set(record.name, (ranks.get(record.name) ?? new Set()).add(record.rank));
  }
  const series = new Map<string, MetricPoint[]>();
  for (const record of records) {
    const key = (ranks.get(record.name)?.size ?? 1) > 1 ? `${record.name} (rank ${record.rank})` : record.name;
    const points = series.get(key) ?? [];
    points.push({ step: record.step, value: record.value });
    series.set(key, points);
  }
  for (const points of series.values()) {
    points.sort((a, b) => a.step - b.step);
  }
  return series;
}

/** Keeps a growing log's last `limit` characters, cut at a line start, so a long tail stays fast. */
export function appendTail(current: string, addition: string, limit = 200000): string {
  const text = current + addition;
  if (text.length <= limit) {
    return text;
  }
  const cut = text.indexOf('\n', text.length - limit);
  return '…\n' + text.slice(cut >= 0 ? cut + 1 : text.length - limit);
}

export const LOAD_EXTENSION = '%load_ext batchai_jupyter';

/** Whether a notebook (its cells' sources) has yet to load the magics before a `%%batchai_job` cell. */
export function needsExtensionCell(sources: string[]): boolean {
  return !sources.some(source => /^\s*%load_ext\s+batchai_jupyter\s*$/m.test(source));
}

/** The `%%batchai_job` cell the notebook command inserts. */
export function jobCellTemplate(cluster?: string): string {
  const target = cluster ? ` --cluster ${cluster}` : '';
  return [
    `%%batchai_job${target} --nodes 1 --experiment default`,
    '# This cell runs as a job on the cluster; its output streams to the Batch AI panel.',
    'import socket',
    "print('hello from', socket.gethostname())",
    ''
  ].join('\n');
}

/** Delay before the n-th retry (0-based): 1 s doubling to 30 s. */
export function backoffSeconds(attempt: number): number {
  return Math.min(30, 2 ** Math.max(0, attempt));
}

/** One run of an experiment (GET .../experiments/{e}/runs): a job with its params and metric summaries. */
export interface MetricSummary {
  final: number;
  min: number;
  max: number;
  count: number;
  lastStep: number;
}

export interface Run {
  name: string;
  experiment: string;
  cluster: string;
  state: string;
  pruned: boolean;
  created: number;
  startTime: number | null;
  endTime: number | null;
  duration: number | null;
  nodeCount: number;
  nodeHours: number;
  exitCode: number | null;
  params: Record<string, unknown>;
  metrics: Record<string, MetricSummary>;
}

/** A column of the runs table: a fixed field, a parameter, or one summary of a metric. */
export interface RunColumn {
  key: string; // "state", "param:lr", "metric:loss.final"
  label: string;
}

const RUN_FIELDS: RunColumn[] = [
  { key: 'name', label: 'Run' },
  { key: 'state', label: 'State' },
  { key: 'duration', label: 'Time' },
  { key: 'nodeHours', label: 'Node-h' }
];

/** The table's columns: the fixed fields, every parameter, then each metric's final and best value. */
export function runColumns(runs: Run[], goals: Record<string, 'minimize' | 'maximize'> = {}): RunColumn[] {
  const params = [...new Set(runs.flatMap(run => Object.keys(run.params)))].sort();
  const metrics = [...new Set(runs.flatMap(run => Object.keys(run.metrics)))].sort();
  return [
    ...RUN_FIELDS,
    ...params.map(p => ({ key: `param:${p}`, label: p })),
    ...metrics.flatMap(m => {
      const best = goals[m] === 'maximize' ? 'max' : 'min';
      return [
        { key: `metric:${m}.final`, label: `${m} (final)` },
        { key: `metric:${m}.${best}`, label: `${m} (${best})` }
      ];
    })
  ];
}

/** A run's value in a column (undefined when it has none). */
export function runValue(run: Run, key: string): unknown {
  if (key.startsWith('param:')) {
    return run.params[key.slice(6)];
  }
  if (key.startsWith('metric:')) {
    const [name, summary] = splitLast(key.slice(7), '.');
    return run.metrics[name]?.[summary as keyof MetricSummary];
  }
  return (run as unknown as Record<string, unknown>)[key];
}

function splitLast(text: string, separator: string): [string, string] {
  const cut = text.lastIndexOf(separator);
  return [text.slice(0, cut), text.slice(cut + 1)];
}

/** Runs sorted by a column; numbers (and numeric strings) as numbers; runs without a value always last. */
export function sortRuns(runs: Run[], key: string, descending = false): Run[] {
  const numeric = (value: unknown): number | null => {
    const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
    return Number.isFinite(n) ? n : null;
  };
  return [...runs].sort((a, b) => {
    const [va, vb] = [runValue(a, key), runValue(b, key)];
    if (va === undefined || va === null) {
      return vb === undefined || vb === null ? 0 : 1;
    }
    if (vb === undefined || vb === null) {
      return -1;
    }
    const [na, nb] = [numeric(va), numeric(vb)];
    const order = na !== null && nb !== null ? na - nb : String(va).localeCompare(String(vb));
    return descending ? -order : order;
  });
}

/** A table cell's text: numbers to 4 significant digits, durations as h:mm:ss. */
export function formatRunValue(key: string, value: unknown): string {
  if (value === undefined || value === null) {
    return '';
  }
  if (key === 'duration' && typeof value === 'number') {
    return formatSeconds(value);
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** A sweep (GET .../sweeps/{s}) and its trials (GET .../sweeps/{s}/trials). */
export const TRIAL_STATES = ['running', 'completed', 'pruned', 'failed', 'cancelled'] as const;
export const ACTIVE_SWEEP_STATES = ['running', 'cancelling'];

export interface Sweep {
  name: string;
  workspace: string;
  experiment: string;
  state: string;
  cluster: string | null;
  sampler: unknown;
  primaryMetric: { name: string; goal: 'minimize' | 'maximize' };
  maxTrials: number;
  maxConcurrentTrials: number;
  earlyTermination: { policy: string };
  trialCounts: Record<string, number>;
  trialsStarted: number;
  bestTrial: { number: number; job: string; value: number; params: Record<string, unknown> } | null;
  errors: { message?: string }[];
}

export interface Trial {
  number: number;
  job: string;
  state: string;
  jobState: string | null;
  params: Record<string, unknown>;
  value: number | null;
  prunedStep: number | null;
}

/** Trials ended / the sweep's budget, for the progress bar (a trial still running is not done). */
export function sweepProgress(sweep: Sweep): { done: number; total: number; text: string } {
  const done = TRIAL_STATES.filter(s => s !== 'running').reduce((sum, s) => sum + (sweep.trialCounts[s] ?? 0), 0);
  const total = Math.max(sweep.maxTrials, sweep.trialsStarted, 1);
  return { done, total, text: `${done} of ${total} trials done` };
}

/** "2 running · 3 completed · 1 pruned", leaving out states with no trial. */
export function trialCountsSummary(counts: Record<string, number>): string {
  const parts = TRIAL_STATES.filter(s => (counts[s] ?? 0) > 0).map(s => `${counts[s]} ${s}`);
  return parts.length ? parts.join(' · ') : 'no trials yet';
}

/** Whether a trial's curve may still grow, so the view reads it again. */
export function trialIsLive(trial: Trial): boolean {
  return trial.state === 'running' || (trial.jobState !== null && ACTIVE_JOB_STATES.includes(trial.jobState));
}

/** Metric points as the REST API sends them ([[step, value], ...]) as chart points. */
export function toPoints(pairs: [number, number][]): MetricPoint[] {
  return pairs.map(([step, value]) => ({ step, value }));
}

/** One axis of the parallel-coordinates view: a parameter, or the compared metric (always last). */
export interface ParallelAxis {
  key: string;
  label: string;
  ticks: { label: string; position: number }[]; // position 0 (bottom) … 1 (top)
}

/** A run across the axes (null where it has no value) and how good its metric is (1 best … 0 worst). */
export interface ParallelLine {
  run: string;
  positions: (number | null)[];
  score: number | null;
  pruned: boolean;
}

/**
 * Parameters against a metric's final value: numeric axes scale from their min to their max, others
 * spread their sorted values evenly. Only parameters that vary between runs get an axis.
 */
export function parallelCoordinates(runs: Run[], metric: string, goal: 'minimize' | 'maximize' = 'minimize'): { axes: ParallelAxis[]; lines: ParallelLine[] } {
  const keys = runColumns(runs)
    .filter(c => c.key.startsWith('param:'))
    .filter(c => new Set(runs.map(run => JSON.stringify(runValue(run, c.key) ?? null))).size > 1);
  const metricKey = `metric:${metric}.final`;
  const columns = [...keys, { key: metricKey, label: metric }];
  const axes: ParallelAxis[] = [];
  const place: ((value: unknown) => number | null)[] = [];
  for (const column of columns) {
    const values = runs.map(run => runValue(run, column.key)).filter(v => v !== undefined && v !== null);
    const numbers = values.map(v => (typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN));
    if (numbers.length && numbers.every(Number.isFinite)) {
      const [min, max] = [Math.min(...numbers), Math.max(...numbers)];
      const span = max - min || 1;
      axes.push({ key: column.key, label: column.label, ticks: [{ label: formatRunValue(column.key, min), position: 0 }, { label: formatRunValue(column.key, max), position: max === min ? 0 : 1 }] });
      place.push(v => (v === undefined || v === null ? null : (Number(v) - min) / span));
    } else {
      const labels = [...new Set(values.map(v => formatRunValue(column.key, v)))].sort();
      const step = labels.length > 1 ? 1 / (labels.length - 1) : 0;
      axes.push({ key: column.key, label: column.label, ticks: labels.map((label, i) => ({ label, position: i * step })) });
      place.push(v => (v === undefined || v === null ? null : labels.indexOf(formatRunValue(column.key, v)) * step));
    }
  }
  const lines = runs.map(run => {
    const positions = columns.map((column, i) => place[i](runValue(run, column.key)));
    const atMetric = positions[positions.length - 1];
    const score = atMetric === null ? null : goal === 'minimize' ? 1 - atMetric : atMetric;
    return { run: run.name, positions, score, pruned: run.pruned };
  });
  return { axes, lines };
}
