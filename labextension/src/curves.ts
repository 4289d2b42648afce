/**
 * Runs' curves of one metric each, read once a run has ended and again on every refresh while it runs,
 * so a view of fifty finished runs asks for each curve only once.
 */
import { ApiError, BatchAIClient, ExperimentKey } from './api';
import { MetricPoint, toPoints } from './model';

interface Entry {
  points: MetricPoint[];
  final: boolean;
}

export class CurveCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly client: BatchAIClient,
    private readonly key: ExperimentKey
  ) {}

  /** The points of `metric` of each run in `runs` ({run: live?}); live runs and unread ones are read now. */
  async curves(metric: string, runs: Map<string, boolean>): Promise<Map<string, MetricPoint[]>> {
    await Promise.all(
      [...runs].map(async ([run, live]) => {
        const id = `${run}\n${metric}`;
        const known = this.entries.get(id);
        if (known?.final) {
          return;
        }
        try {
          const metrics = await this.client.runMetrics(this.key, run, [metric]);
          this.entries.set(id, { points: toPoints(metrics[metric] ?? []), final: !live });
        } catch (failure) {
          if (!(failure instanceof ApiError && failure.status === 404)) {
            throw failure;
          }
          // the run's job was deleted since the listing: no curve
        }
      })
    );
    return new Map([...runs.keys()].map(run => [run, this.entries.get(`${run}\n${metric}`)?.points ?? []]));
  }
}
