// Unit tests of the panel's logic (src/model.ts), run with Node's built-in test runner: `jlpm test`.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import {
  Cluster,
  ClusterFormValues,
  Job,
  NodeLoad,
  appendTail,
  cpuText,
  gpuText,
  memoryText,
  backoffSeconds,
  clusterRequest,
  experimentsOf,
  filterJobs,
  formatSeconds,
  jobCellTemplate,
  needsExtensionCell,
  jobDuration,
  jobOutcome,
  nodeCountsSummary,
  parseMetrics,
  resizeSettings,
  scaleSummary,
  sortJobs,
  Task,
  matchJobs,
  taskOutcome
} from '../src/model';

function job(name: string, state: string, experiment = 'default', created = '2026-01-01T00:00:00Z'): Job {
  return {
    name,
    workspace: 'default',
    experiment,
    cluster: 'c',
    toolType: 'custom',
    nodeCount: 1,
    executionState: state,
    creationTime: created,
    executionInfo: { startTime: null, endTime: null, exitCode: null, errors: [] },
    properties: {}
  };
}

const FORM: ClusterFormValues = {
  name: 'pool',
  backend: 'local',
  scaleMode: 'manual',
  nodes: '2',
  minNodes: '0',
  maxNodes: '4',
  idleSeconds: '',
  vmPriority: 'dedicated',
  setupCommand: ''
};

test('node counts leave out empty states', () => {
  const counts = { preparingNodeCount: 0, idleNodeCount: 2, runningNodeCount: 1, leavingNodeCount: 0, unusableNodeCount: 0 };
  assert.equal(nodeCountsSummary(counts), '2 idle · 1 running');
  assert.equal(nodeCountsSummary({ ...counts, idleNodeCount: 0, runningNodeCount: 0 }), 'no nodes');
});

test('scale settings read as manual or auto', () => {
  assert.equal(scaleSummary({ manual: { targetNodeCount: 1 } }), 'manual: 1 node');
  assert.equal(scaleSummary({ manual: { targetNodeCount: 3 } }), 'manual: 3 nodes');
  assert.equal(scaleSummary({ autoScale: { minimumNodeCount: 0, maximumNodeCount: 4 } }), 'auto: 0–4 nodes');
});

test('durations: never started, running, ended', () => {
  const j = job('a', 'running');
  assert.equal(jobDuration(j), '');
  j.executionInfo.startTime = '2026-01-01T00:00:00Z';
  assert.equal(jobDuration(j, Date.parse('2026-01-01T00:01:05Z')), '1:05');
  j.executionInfo.endTime = '2026-01-01T02:00:03Z';
  assert.equal(jobDuration(j), '2:00:03');
  assert.equal(formatSeconds(7.9), '0:07');
});

test('jobs filter by state and experiment, newest first', () => {
  const jobs = [job('a', 'succeeded', 'x', '2026-01-01T00:00:01Z'), job('b', 'failed', 'y', '2026-01-01T00:00:03Z'), job('c', 'succeeded', 'y', '2026-01-01T00:00:02Z')];
  assert.deepEqual(filterJobs(jobs, { state: 'succeeded', experiment: '' }).map(j => j.name), ['a', 'c']);
  assert.deepEqual(filterJobs(jobs, { state: 'succeeded', experiment: 'y' }).map(j => j.name), ['c']);
  assert.deepEqual(filterJobs(jobs, { state: '', experiment: '' }).length, 3);
  assert.deepEqual(sortJobs(jobs).map(j => j.name), ['b', 'c', 'a']);
  assert.deepEqual(experimentsOf(jobs), ['x', 'y']);
});

test('cluster form: manual and auto specs', () => {
  assert.deepEqual(clusterRequest(FORM), { ok: true, name: 'pool', spec: { backend: 'local', vmPriority: 'dedicated', nodeCount: 2 } });
  const auto = clusterRequest({ ...FORM, scaleMode: 'auto', idleSeconds: '60', setupCommand: ' pip install x ' });
  assert.deepEqual(auto, {
    ok: true,
    name: 'pool',
    spec: { backend: 'local', vmPriority: 'dedicated', minNodes: 0, maxNodes: 4, idleSecondsBeforeScaledown: 60, setupTask: 'pip install x' }
  });
});

test('cluster form: each bad field says which and how to fix it', () => {
  const error = (values: Partial<ClusterFormValues>) => {
    const result = clusterRequest({ ...FORM, ...values });
    assert.equal(result.ok, false);
    return result.ok ? '' : result.error;
  };
  assert.match(error({ name: 'bad name' }), /^Name: /);
  assert.match(error({ name: '' }), /^Name: /);
  assert.match(error({ nodes: '-1' }), /^Nodes: enter a whole number/);
  assert.match(error({ nodes: 'two' }), /^Nodes: /);
  assert.match(error({ scaleMode: 'auto', maxNodes: '0' }), /^Maximum nodes: /);
  assert.match(error({ scaleMode: 'auto', minNodes: '5', maxNodes: '4' }), /^Maximum nodes: .*minimum/);
  assert.match(error({ idleSeconds: '1.5' }), /^Idle seconds/);
});

test('resize keeps the scale mode', () => {
  const cluster = { properties: { scaleSettings: { manual: { targetNodeCount: 1 } } } } as unknown as Cluster;
  assert.deepEqual(resizeSettings(cluster, 3), { manual: { targetNodeCount: 3 } });
  const auto = { properties: { scaleSettings: { autoScale: { minimumNodeCount: 2, maximumNodeCount: 4 } } } } as unknown as Cluster;
  assert.deepEqual(resizeSettings(auto, 1), { autoScale: { minimumNodeCount: 1, maximumNodeCount: 1 } });
});

test('metrics: series by name, by rank when several ranks log, partial lines skipped', () => {
  const line = (name: string, step: number, value: number, rank = 0) => JSON.stringify({ name, step, value, rank, time: 0 });
  const text = [line('loss', 1, 0.5), line('loss', 0, 1), line('acc', 0, 0.1), 'not json', line('acc', 0, 0.2, 1), '{"name": "lo'].join('\n');
  const series = parseMetrics(text);
  assert.deepEqual([...series.keys()].sort(), ['acc (rank 0)', 'acc (rank 1)', 'loss']);
  assert.deepEqual(series.get('loss'), [
    { step: 0, value: 1 },
    { step: 1, value: 0.5 }
  ]);
});

test('log tail keeps the last lines within its limit', () => {
  assert.equal(appendTail('a\n', 'b\n', 100), 'a\nb\n');
  const tail = appendTail('line1\nline2\n', 'line3\n', 10);
  assert.equal(tail, '…\nline3\n');
});

test('backoff doubles to 30 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map(backoffSeconds), [1, 2, 4, 8, 16, 30, 30]);
});

test('the job cell template starts with the magic', () => {
  assert.match(jobCellTemplate(), /^%%batchai_job --nodes 1/);
  assert.match(jobCellTemplate('gpu'), /^%%batchai_job --cluster gpu /);
});

test('the magics are loaded once per notebook', () => {
  assert.equal(needsExtensionCell([]), true);
  assert.equal(needsExtensionCell(['import os', '%load_ext other']), true);
  assert.equal(needsExtensionCell(['import os\n%load_ext batchai_jupyter\n']), false);
});

const GIB = 2 ** 30;

function load(fields: Partial<NodeLoad>): NodeLoad {
  return { sampled: '2026-12-02T02:16:51.165Z', scope: 'node', cpuPercent: null, memoryUsedBytes: null, memoryTotalBytes: null, machine: null, gpus: null, ...fields };
}

test('a node of its own shows its CPU, memory and each GPU', () => {
  const node = load({
    cpuPercent: 37.4,
    memoryUsedBytes: 2.1 * GIB,
    memoryTotalBytes: 23.5 * GIB,
    gpus: [
      { index: 0, utilizationPercent: 87, memoryUsedBytes: 40 * GIB, memoryTotalBytes: 79.6 * GIB },
      { index: 1, utilizationPercent: null, memoryUsedBytes: null, memoryTotalBytes: 79.6 * GIB }
    ]
  });
  assert.equal(cpuText(node), '37%');
  assert.equal(memoryText(node), '2.1/23.5 GiB');
  assert.equal(gpuText(node), '0: 87% 40.0/79.6 GiB, 1: - -');
});

test("nodes sharing this machine show their tasks' use, then the machine's", () => {
  const node = load({
    scope: 'tasks',
    cpuPercent: 12,
    memoryUsedBytes: 15 * 2 ** 20,
    memoryTotalBytes: 23.5 * GIB,
    machine: { cpuPercent: 100, memoryUsedBytes: 2.1 * GIB, memoryTotalBytes: 23.5 * GIB }
  });
  assert.equal(cpuText(node), '12% (machine 100%)');
  assert.equal(memoryText(node), '15 MiB (machine 2.1/23.5 GiB)');
  assert.equal(gpuText(node), '-');
});

test('no sample yet, or no first CPU figure, reads as unknown', () => {
  assert.equal(cpuText(null), '-');
  assert.equal(memoryText(null), '-');
  assert.equal(gpuText(null), '-');
  assert.equal(cpuText(load({ memoryUsedBytes: GIB, memoryTotalBytes: 2 * GIB })), '-');
});

test('a job its user terminated reads "terminated"; other failures stay "failed"', () => {
  const terminated = job('t', 'failed');
  terminated.executionInfo.errors = [{ code: 'JobTerminated', message: 'the job was terminated by the user' }];
  assert.equal(jobOutcome(terminated), 'terminated');
  const failed = job('f', 'failed');
  failed.executionInfo.errors = [{ code: 'TaskFailed', message: 'exit 1' }];
  assert.equal(jobOutcome(failed), 'failed');
  assert.equal(jobOutcome(job('r', 'running')), 'running');
});

test('an ssh cluster needs hosts; a default user and a key file go into its backendOptions', () => {
  assert.deepEqual(clusterRequest({ ...FORM, backend: 'ssh' }), {
    ok: false,
    error: 'Hosts: give the machines to run on, e.g. "gpu1, alice@gpu2:2222"'
  });
  const result = clusterRequest({ ...FORM, backend: 'ssh', hosts: 'gpu1, bob@gpu2:2222\n gpu3', user: 'alice', keyFile: ' ~/.ssh/id ' });
  assert.ok(result.ok);
  assert.deepEqual(result.spec.backendOptions, { hosts: ['alice@gpu1', 'bob@gpu2:2222', 'alice@gpu3'], keyFile: '~/.ssh/id' });
  const local = clusterRequest({ ...FORM, hosts: 'ignored' });
  assert.ok(local.ok && !('backendOptions' in local.spec));
});

function task(name: string, index: number | null, exitCode: number | null, endTime: string | null = null, role = 'rank'): Task {
  return { name, role, index, attempt: 1, phase: role === 'prep' ? 'prep' : 'main', node: 'node-0', state: exitCode === null ? 'running' : 'exited', exitCode, stdout: `stdout-${index}.txt`, stderr: `stderr-${index}.txt`, endTime };
}

test('a task that exited non-zero reads failed, zero succeeded, a running one keeps its state', () => {
  assert.equal(taskOutcome(task('rank-1', 1, 1, '2026-01-01T00:00:01Z')), 'failed');
  assert.equal(taskOutcome(task('rank-0', 0, 0, '2026-01-01T00:00:01Z')), 'succeeded');
  assert.equal(taskOutcome(task('rank-0', 0, null)), 'running');
});

test('a job that ran under a second shows its tenths, not 0:00', () => {
  assert.equal(formatSeconds(0.4), '0.4 s');
  assert.equal(formatSeconds(0.01), '0.1 s');
  assert.equal(formatSeconds(0), '0:00');
  const j = job('short', 'succeeded');
  j.executionInfo.startTime = '2026-01-01T00:00:00.100000Z';
  j.executionInfo.endTime = '2026-01-01T00:00:00.500000Z';
  assert.equal(jobDuration(j), '0.4 s');
});

test('the picker matches every word against name, experiment, cluster and state', () => {
  const jobs = [job('train-a', 'succeeded', 'mnist'), job('train-b', 'failed', 'cifar'), job('eval', 'running', 'mnist')];
  assert.deepEqual(matchJobs(jobs, '').map(j => j.name), ['train-a', 'train-b', 'eval']);
  assert.deepEqual(matchJobs(jobs, 'TRAIN mnist').map(j => j.name), ['train-a']);
  assert.deepEqual(matchJobs(jobs, 'failed').map(j => j.name), ['train-b']);
});
