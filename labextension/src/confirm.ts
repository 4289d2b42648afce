/** Confirmations before what cannot be undone, the same wherever the action is offered. */
import { Dialog, showDialog } from '@jupyterlab/apputils';

/** Asks before terminating a job: its tasks are killed and it ends as "terminated". */
export async function confirmTerminate(name: string): Promise<boolean> {
  const answer = await showDialog({
    title: `Terminate job ${name}?`,
    body: 'Its running tasks are stopped now and the job ends as terminated by you; its files so far are kept.',
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Terminate' })],
    defaultButton: 0
  });
  return answer.button.accept;
}
