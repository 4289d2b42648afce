/**
 * Live updates: the service's event stream (server-sent events) tells the panel when something
 * changed; while the stream is down the panel polls instead, backing off from 1 s to 30 s.
 */
import { backoffSeconds } from './model';

export interface ServiceEvent {
  type: string;
  workspace?: string;
  experiment?: string;
  name?: string;
  cluster?: string;
  state?: string;
}

export class LiveUpdates {
  private source: EventSource | null = null;
  private retryTimer = 0;
  private attempt = 0;
  private disposed = false;

  /**
   * @param url the event stream
   * @param onEvent one state change
   * @param onPoll called on every retry while the stream is down (the panel refreshes then)
   * @param onStatus "live" or a short reason why updates are delayed
   */
  constructor(
    private readonly url: string,
    private readonly onEvent: (event: ServiceEvent) => void,
    private readonly onPoll: () => void,
    private readonly onStatus: (status: string) => void
  ) {
    this.connect();
  }

  private connect(): void {
    if (this.disposed) {
      return;
    }
    const source = new EventSource(this.url);
    this.source = source;
    source.onopen = () => {
      this.attempt = 0;
      this.onStatus('live');
      this.onPoll(); // catch up on what happened while disconnected
    };
    source.onmessage = message => {
      try {
        this.onEvent(JSON.parse(message.data));
      } catch {
        // not an event of ours
      }
    };
    source.onerror = () => {
      source.close();
      this.source = null;
      const delay = backoffSeconds(this.attempt++);
      this.onStatus(`event stream lost; retrying in ${delay} s`);
      this.retryTimer = window.setTimeout(() => {
        this.onPoll();
        this.connect();
      }, delay * 1000);
    };
  }

  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.retryTimer);
    this.source?.close();
    this.source = null;
  }
}
