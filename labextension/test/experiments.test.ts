// Unit tests of the experiment view's logic (runs table, sweep progress), run with `jlpm test`.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { Run, Sweep, formatRunValue, parallelCoordinates, runColumns, runValue, sortRuns, sweepProgress, toPoints, trialCountsSummary, trialIsLive } from '../src/model';

function run(name: string, params: Record<string, unknown>, loss?: number, state = 'succeeded'): Run {
  return {
    name,
    experiment: 'e',
    cluster: 'c',
    state,
    pruned: false,
    created: 0,
    startTime: 0,
    endTime: 10,
    duration: 10,
    nodeCount: 1,
    nodeHours: 0.01,
    exitCode: 0,
    params,
    metrics: loss === undefined ? {} : { loss: { final: loss, min: loss - 1, max: loss + 1, count: 3, lastStep: 2 } }
  };
}

test('columns are the fixed fields, every parameter and each metric final and best by its goal', () => {
  const runs = [run('a', { lr: '0.1' }, 2), run('b', { width: 64 }), { ...run('c', {}), metrics: { acc: { final: 1, min: 0, max: 1, count: 1, lastStep: 0 } } }];
  const keys = runColumns(runs, { acc: 'maximize' }).map(c => c.key);
  assert.deepEqual(keys, [
    'name',
    'state',
    'duration',
    'nodeHours',
    'param:lr',
    'param:width',
    'metric:acc.final',
    'metric:acc.max',
    'metric:loss.final',
    'metric:loss.min'
  ]);
});

test('a run value reads params and metric summaries, including metric names with dots', () => {
  const r = { ...run('a', { lr: 0.1 }, 3), metrics: { 'val.loss': { final: 5, min: 4, max: 6, count: 2, lastStep: 1 } } };
  assert.equal(runValue(r, 'param:lr'), 0.1);
  assert.equal(runValue(r, 'metric:val.loss.min'), 4);
  assert.equal(runValue(r, 'metric:missing.final'), undefined);
  assert.equal(runValue(r, 'state'), 'succeeded');
});

test('runs sort numerically (numeric strings too), either way, with runs lacking the value last', () => {
  const runs = [run('a', { lr: '0.5' }, 3), run('b', { lr: '10' }), run('c', { lr: '2' }, 1), run('d', {}, 2)];
  assert.deepEqual(sortRuns(runs, 'param:lr').map(r => r.name), ['a', 'c', 'b', 'd']);
  assert.deepEqual(sortRuns(runs, 'metric:loss.final').map(r => r.name), ['c', 'd', 'a', 'b']);
  assert.deepEqual(sortRuns(runs, 'metric:loss.final', true).map(r => r.name), ['a', 'd', 'c', 'b']);
  assert.deepEqual(sortRuns(runs, 'name', true).map(r => r.name), ['d', 'c', 'b', 'a']);
});

test('values print compactly', () => {
  assert.equal(formatRunValue('metric:loss.final', 0.123456789), '0.1235');
  assert.equal(formatRunValue('duration', 75), '1:15');
  assert.equal(formatRunValue('param:x', 64), '64');
  assert.equal(formatRunValue('param:x', undefined), '');
  assert.equal(formatRunValue('param:x', [1, 2]), '[1,2]');
});

function sweep(counts: Record<string, number>, maxTrials = 8): Sweep {
  return {
    name: 's',
    workspace: 'default',
    experiment: 'e',
    state: 'running',
    cluster: 'c',
    sampler: { type: 'random' },
    primaryMetric: { name: 'loss', goal: 'minimize' },
    maxTrials,
    maxConcurrentTrials: 2,
    earlyTermination: { policy: 'median' },
    trialCounts: counts,
    trialsStarted: Object.values(counts).reduce((a, b) => a + b, 0),
    bestTrial: null,
    errors: []
  };
}

test('sweep progress counts ended trials of the budget; running ones are not done', () => {
  assert.deepEqual(sweepProgress(sweep({ running: 2, completed: 3, pruned: 1 })), { done: 4, total: 8, text: '4 of 8 trials done' });
  assert.equal(sweepProgress(sweep({}, 0)).total, 1);
  assert.equal(trialCountsSummary({ running: 2, completed: 0, pruned: 1 }), '2 running · 1 pruned');
  assert.equal(trialCountsSummary({}), 'no trials yet');
});

test('a trial curve is live while the trial or its job still runs', () => {
  const trial = { number: 0, job: 'j', state: 'running', jobState: 'running', params: {}, value: null, prunedStep: null };
  assert.equal(trialIsLive(trial), true);
  assert.equal(trialIsLive({ ...trial, state: 'pruned', jobState: 'terminating' }), true); // its last points still land
  assert.equal(trialIsLive({ ...trial, state: 'completed', jobState: 'succeeded' }), false);
  assert.deepEqual(toPoints([[0, 1.5], [2, 0.5]]), [{ step: 0, value: 1.5 }, { step: 2, value: 0.5 }]);
});

test('parallel coordinates: varying params as axes, the metric last, lines scored best = 1', () => {
  const runs = [run('a', { lr: 0.1, opt: 'sgd', fixed: 1 }, 3), run('b', { lr: 0.3, opt: 'adam', fixed: 1 }, 1), run('c', { lr: 0.2, opt: 'sgd', fixed: 1 })];
  const { axes, lines } = parallelCoordinates(runs, 'loss', 'minimize');
  assert.deepEqual(axes.map(a => a.label), ['lr', 'opt', 'loss']);
  assert.deepEqual(axes[1].ticks, [{ label: 'adam', position: 0 }, { label: 'sgd', position: 1 }]);
  assert.deepEqual(axes[2].ticks.map(t => t.label), ['1', '3']);
  const [a, b, c] = lines;
  assert.deepEqual(a.positions, [0, 1, 1]);
  assert.equal(a.score, 0);
  assert.equal(b.score, 1);
  assert.deepEqual(c.positions.map(p => (p === null ? null : Number(p.toFixed(3)))), [0.5, 1, null]);
  assert.equal(c.score, null);
  assert.equal(parallelCoordinates(runs, 'loss', 'maximize').lines[0].score, 1);
});
