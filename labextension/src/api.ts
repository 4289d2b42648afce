/**
 * The Batch AI REST API (/batchai/api/v1) as seen from the browser, through Jupyter's own
 * authenticated connection. Every failure becomes an ApiError whose message a person can read.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError, errorFromReply } from './errors';
import { BackendInfo, Cluster, ClusterNode, FileEntry, Job, Run, Sweep, Task, Trial } from './model';

export { ApiError };

export const API_PATH = 'batchai/api/v1';

export interface Page<T> {
  value: T[];
  nextLink?: string;
}

export interface FileChunk {
  text: string;
  nextOffset: number;
}

export class BatchAIClient {
  readonly settings: ServerConnection.ISettings;

  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings ?? ServerConnection.makeSettings();
  }

  url(path: string): string {
    return URLExt.join(this.settings.baseUrl, API_PATH, path);
  }

  /** A path the service returned ("/<base>/batchai/api/v1/…") or a full URL (a Blob SAS link), as a full URL. */
  absoluteUrl(pathOrUrl: string): string {
    return new URL(pathOrUrl, this.settings.baseUrl).href; // the service's paths already hold the base URL
  }

  /** The event stream's URL; EventSource cannot send headers, so the token (if any) travels in the query. */
  eventsUrl(): string {
    const token = this.settings.token;
    return this.url('events') + (token ? `?token=${encodeURIComponent(token)}` : '');
  }

  async fetch(pathOrUrl: string, init: RequestInit = {}): Promise<Response> {
    const url = pathOrUrl.startsWith('/') ? this.absoluteUrl(pathOrUrl) : this.url(pathOrUrl);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (failure) {
      throw new ApiError('NetworkError', `cannot reach the Jupyter server (${String(failure)}); is it still running?`, 0);
    }
    if (!response.ok) {
      throw errorFromReply(response.status, await response.text());
    }
    return response;
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this.fetch(path, init);
    return response.status === 204 ? (undefined as T) : ((await response.json()) as T);
  }

  /** Every item of a paged listing, following nextLink. */
  async all<T>(path: string): Promise<T[]> {
    const items: T[] = [];
    let next: string | undefined = path;
    while (next) {
      const page: Page<T> = await this.json<Page<T>>(next);
      items.push(...page.value);
      next = page.nextLink;
    }
    return items;
  }

  /** The service's compute backends, and whether each can create a cluster here (and why not). */
  backends(): Promise<BackendInfo[]> {
    return this.all('backends');
  }

  workspaces(): Promise<{ name: string }[]> {
    return this.all('workspaces');
  }

  clusters(workspace: string): Promise<Cluster[]> {
    return this.all(`workspaces/${enc(workspace)}/clusters`);
  }

  createCluster(workspace: string, name: string, spec: object): Promise<Cluster> {
    return this.json(`workspaces/${enc(workspace)}/clusters/${enc(name)}`, { method: 'PUT', body: JSON.stringify(spec) });
  }

  resizeCluster(workspace: string, name: string, scaleSettings: object): Promise<Cluster> {
    return this.json(`workspaces/${enc(workspace)}/clusters/${enc(name)}`, {
      method: 'PATCH',
      body: JSON.stringify({ scaleSettings })
    });
  }

  deleteCluster(workspace: string, name: string): Promise<void> {
    return this.json(`workspaces/${enc(workspace)}/clusters/${enc(name)}`, { method: 'DELETE' });
  }

  /** A cluster's nodes with their live `load`. */
  clusterNodes(workspace: string, cluster: string): Promise<ClusterNode[]> {
    return this.all(`workspaces/${enc(workspace)}/clusters/${enc(cluster)}/nodes`);
  }

  jobs(workspace: string): Promise<Job[]> {
    return this.all(`workspaces/${enc(workspace)}/jobs`);
  }

  private jobPath(job: JobKey): string {
    return `workspaces/${enc(job.workspace)}/experiments/${enc(job.experiment)}/jobs/${enc(job.name)}`;
  }

  job(job: JobKey): Promise<Job> {
    return this.json(this.jobPath(job));
  }

  terminateJob(job: JobKey): Promise<Job> {
    return this.json(`${this.jobPath(job)}/terminate`, { method: 'POST' });
  }

  deleteJob(job: JobKey): Promise<void> {
    return this.json(this.jobPath(job), { method: 'DELETE' });
  }

  tasks(job: JobKey): Promise<Task[]> {
    return this.all(`${this.jobPath(job)}/tasks`);
  }

  /** The nodes a job runs on, with their live `load`. */
  jobNodes(job: JobKey): Promise<ClusterNode[]> {
    return this.all(`${this.jobPath(job)}/nodes`);
  }

  files(job: JobKey, outputId: string, path = '.'): Promise<FileEntry[]> {
    const query = URLExt.objectToQueryString({ outputdirectoryid: outputId, path });
    return this.all(`${this.jobPath(job)}/files${query}`);
  }

  /** The bytes of a job file from `offset` on, as text; a missing file reads as empty. */
  async readFile(job: JobKey, outputId: string, path: string, offset: number): Promise<FileChunk> {
    const query = URLExt.objectToQueryString({ outputdirectoryid: outputId, path, offset: String(offset) });
    try {
      const response = await this.fetch(`${this.jobPath(job)}/files/content${query}`);
      const text = await response.text();
      const next = Number(response.headers.get('X-BatchAI-Next-Offset'));
      return { text, nextOffset: Number.isFinite(next) && next > 0 ? next : offset + new Blob([text]).size };
    } catch (failure) {
      if (failure instanceof ApiError && failure.code === 'FileNotFound') {
        return { text: '', nextOffset: offset }; // the file is not written yet
      }
      throw failure;
    }
  }

  private experimentPath(key: ExperimentKey): string {
    return `workspaces/${enc(key.workspace)}/experiments/${enc(key.experiment)}`;
  }

  /** The experiment's runs with their params and metric summaries. */
  runs(key: ExperimentKey): Promise<Run[]> {
    return this.all(`${this.experimentPath(key)}/runs`);
  }

  /** One run's logged points, {metric: [[step, value], ...]}, of the named metrics (all when none). */
  async runMetrics(key: ExperimentKey, job: string, names: string[] = []): Promise<Record<string, [number, number][]>> {
    const query = names.map(n => `name=${enc(n)}`).join('&');
    const reply = await this.json<{ metrics: Record<string, [number, number][]> }>(
      `${this.experimentPath(key)}/runs/${enc(job)}/metrics${query ? '?' + query : ''}`
    );
    return reply.metrics;
  }

  sweeps(key: ExperimentKey): Promise<Sweep[]> {
    return this.all(`${this.experimentPath(key)}/sweeps`);
  }

  sweep(key: ExperimentKey, name: string): Promise<Sweep> {
    return this.json(`${this.experimentPath(key)}/sweeps/${enc(name)}`);
  }

  trials(key: ExperimentKey, sweep: string): Promise<Trial[]> {
    return this.all(`${this.experimentPath(key)}/sweeps/${enc(sweep)}/trials`);
  }

  cancelSweep(key: ExperimentKey, sweep: string): Promise<Sweep> {
    return this.json(`${this.experimentPath(key)}/sweeps/${enc(sweep)}/cancel`, { method: 'POST' });
  }

  /** Starts (or finds) TensorBoard over an experiment's runs, or over one job when `job` is given. */
  openTensorBoard(key: ExperimentKey, job?: string): Promise<TensorBoardOpened> {
    const path = job ? `${this.experimentPath(key)}/jobs/${enc(job)}/tensorboard` : `${this.experimentPath(key)}/tensorboard`;
    return this.json(path, { method: 'POST' });
  }

  /** Fetches a file through the authenticated endpoint and hands it to the browser as a download. */
  async download(downloadUrl: string, fileName: string): Promise<void> {
    const response = await this.fetch(downloadUrl);
    const blob = await response.blob();
    const objectUrl = URL.createObjectURL(blob);
    const anchor = document.createElement('a');
    anchor.href = objectUrl;
    anchor.download = fileName;
    document.body.appendChild(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(objectUrl), 10000);
  }
}

export interface ExperimentKey {
  workspace: string;
  experiment: string;
}

export interface TensorBoardOpened {
  id: string;
  url: string;
  runs: string[];
}

export interface JobKey {
  workspace: string;
  experiment: string;
  name: string;
}

function enc(part: string): string {
  return encodeURIComponent(part);
}
