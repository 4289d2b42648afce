/** "Open Job…": a searchable list of the workspace's jobs, newest first, in a JupyterLab dialog. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { BatchAIClient, JobKey } from './api';
import { h, replaceChildren, stateBadge } from './dom';
import { Job, jobOutcome, matchJobs, sortJobs } from './model';
import { messageOf } from './panel';

class JobPicker extends Widget implements Dialog.IBodyWidget<JobKey | null> {
  private chosen: Job | null = null;
  private readonly search = h('input', {
    className: 'jp-mod-styled bai-PickerSearch',
    type: 'search',
    placeholder: 'Filter by name, experiment, cluster or state',
    'aria-label': 'Filter jobs'
  });
  private readonly list = h('ul', { className: 'bai-PickerList', role: 'listbox', 'aria-label': 'Jobs' });

  constructor(private readonly jobs: Job[]) {
    super();
    this.addClass('bai-JobPicker');
    this.search.addEventListener('input', () => this.render());
    this.node.append(this.search, this.list);
    this.render();
  }

  /** Shows the jobs matching the filter; the first is chosen, so Enter opens it. */
  private render(): void {
    const shown = matchJobs(this.jobs, this.search.value);
    this.chosen = shown.includes(this.chosen!) ? this.chosen : shown[0] ?? null;
    if (!shown.length) {
      replaceChildren(this.list, h('li', { className: 'bai-Hint' }, this.jobs.length ? 'No job matches.' : 'No jobs in this workspace yet.'));
      return;
    }
    replaceChildren(
      this.list,
      ...shown.map(job => {
        const item = h(
          'li',
          {
            role: 'option',
            className: 'bai-PickerItem',
            'aria-selected': String(job === this.chosen),
            'data-job': job.name,
            'data-experiment': job.experiment,
            title: `${job.experiment}/${job.name}`
          },
          h('span', { className: 'bai-Name' }, job.name),
          h('span', { className: 'bai-Detail' }, `${job.experiment} · ${job.cluster}`),
          stateBadge(jobOutcome(job))
        );
        item.addEventListener('click', () => {
          this.chosen = job;
          this.render();
        });
        return item;
      })
    );
  }

  getValue(): JobKey | null {
    return this.chosen && { workspace: this.chosen.workspace, experiment: this.chosen.experiment, name: this.chosen.name };
  }
}

/** Asks which job to open; null when the user cancels. A failure to list jobs is thrown with its message. */
export async function pickJob(client: BatchAIClient, workspace: string): Promise<JobKey | null> {
  let jobs: Job[];
  try {
    jobs = sortJobs(await client.jobs(workspace));
  } catch (failure) {
    throw new Error(`cannot list the jobs of workspace ${workspace}: ${messageOf(failure)}`);
  }
  const result = await showDialog({
    title: `Open a Batch AI job (workspace ${workspace})`,
    body: new JobPicker(jobs),
    focusNodeSelector: 'input[type="search"]',
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Open' })]
  });
  return result.button.accept ? result.value : null;
}
