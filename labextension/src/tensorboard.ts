/**
 * TensorBoard over a job or an experiment: the service starts it and answers with a URL under the
 * Jupyter server's authenticated proxy, which a Lab tab shows in an iframe (same origin, so the
 * Jupyter login cookie goes with every request and no token travels in the URL).
 */
import { IFrame, MainAreaWidget } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';

import { BatchAIClient, ExperimentKey } from './api';

/** Asks the service for TensorBoard and returns a main-area tab showing it (not yet added to the shell). */
export async function tensorBoardTab(client: BatchAIClient, key: ExperimentKey, job: string | undefined, icon: LabIcon): Promise<MainAreaWidget<IFrame>> {
  const opened = await client.openTensorBoard(key, job);
  // TensorBoard is a single-page app of the same origin: it needs its scripts and its origin's cookie.
  const frame = new IFrame({ sandbox: ['allow-scripts', 'allow-same-origin', 'allow-downloads', 'allow-popups'] });
  frame.url = new URL(opened.url, window.location.href).href;
  frame.addClass('bai-TensorBoard');
  const widget = new MainAreaWidget({ content: frame });
  widget.id = `batchai-tensorboard-${opened.id}`;
  widget.title.label = `TensorBoard: ${job ?? key.experiment}`;
  widget.title.caption = `TensorBoard over ${job ? `job ${job}` : `experiment ${key.experiment}`} (${opened.runs.length} run(s))`;
  widget.title.icon = icon;
  widget.title.closable = true;
  widget.node.dataset.tensorboardUrl = frame.url;
  return widget;
}
