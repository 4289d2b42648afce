/**
 * One sweep, as the notebook's SweepMonitor shows it: trials by state with a progress bar, the best
 * trial so far, the curves of the primary metric (running trials live, pruned ones greyed) and the
 * trials' table.
 */
import { overlayChart } from './chart';
import { button, h, stateBadge } from './dom';
import { ACTIVE_SWEEP_STATES, MetricPoint, Sweep, Trial, formatRunValue, sweepProgress, trialCountsSummary } from './model';

export interface SweepSectionActions {
  openJob(job: string): void;
  cancel(sweep: string): void;
}

export function sweepSection(
  sweep: Sweep,
  trials: Trial[],
  curves: Map<string, MetricPoint[]>,
  actions: SweepSectionActions
): HTMLElement {
  const metric = sweep.primaryMetric.name;
  const progress = sweepProgress(sweep);
  const best = sweep.bestTrial;
  const params = [...new Set(trials.flatMap(t => Object.keys(t.params)))].sort();
  const lines = trials.map(trial => ({
    label: `#${trial.number} ${trial.job}`,
    points: curves.get(trial.job) ?? [],
    greyed: trial.state === 'pruned'
  }));
  return h(
    'div',
    { className: 'bai-Sweep', 'data-sweep': sweep.name, 'data-state': sweep.state },
    h(
      'div',
      { className: 'bai-SectionHeader' },
      h('h4', { className: 'bai-Name' }, `Sweep ${sweep.name}`),
      stateBadge(sweep.state),
      h('span', { className: 'bai-Detail' }, `${metric} → ${sweep.primaryMetric.goal} · policy ${sweep.earlyTermination.policy}`),
      ACTIVE_SWEEP_STATES.includes(sweep.state) && sweep.state !== 'cancelling'
        ? button('Cancel', `Cancel sweep ${sweep.name}`, () => actions.cancel(sweep.name))
        : null
    ),
    h(
      'div',
      { className: 'bai-Progress' },
      h('progress', { max: progress.total, value: progress.done, 'aria-label': `Trials of sweep ${sweep.name} done` }),
      h('span', { className: 'bai-ProgressText' }, progress.text),
      h('span', { className: 'bai-TrialCounts' }, trialCountsSummary(sweep.trialCounts))
    ),
    h(
      'div',
      { className: 'bai-Best', 'data-job': best?.job ?? '' },
      best
        ? `Best so far: trial #${best.number} (${best.job}) ${metric} = ${formatRunValue('value', best.value)} · ` +
            Object.entries(best.params)
              .map(([k, v]) => `${k}=${formatRunValue(k, v)}`)
              .join(', ')
        : 'No trial has completed yet.'
    ),
    ...(sweep.errors ?? []).map(e => h('div', { className: 'bai-Error', role: 'alert' }, e.message ?? '')),
    overlayChart(metric, lines),
    h(
      'table',
      { className: 'bai-Table', 'aria-label': `Trials of sweep ${sweep.name}` },
      h('thead', {}, h('tr', {}, ...['#', 'Trial job', 'State', ...params, metric, 'Pruned at'].map(c => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        ...trials.map(trial => {
          const open = h('a', { href: '#', className: 'bai-Link', 'aria-label': `Open job ${trial.job}` }, trial.job);
          open.addEventListener('click', event => {
            event.preventDefault();
            actions.openJob(trial.job);
          });
          return h(
            'tr',
            {
              'data-trial': trial.number,
              'data-job': trial.job,
              'data-state': trial.state,
              className: [trial.state === 'pruned' ? 'bai-Greyed' : '', best?.job === trial.job ? 'bai-BestRow' : ''].join(' ').trim()
            },
            h('td', {}, String(trial.number)),
            h('td', {}, open),
            h('td', {}, stateBadge(trial.state)),
            ...params.map(p => h('td', { className: 'bai-Number' }, formatRunValue(p, trial.params[p]))),
            h('td', { className: 'bai-Number' }, formatRunValue('value', trial.value ?? lastValue(curves.get(trial.job)))),
            h('td', { className: 'bai-Number' }, trial.prunedStep === null ? '' : `step ${trial.prunedStep}`)
          );
        })
      )
    )
  );
}

function lastValue(points: MetricPoint[] | undefined): number | undefined {
  return points?.length ? points[points.length - 1].value : undefined;
}
