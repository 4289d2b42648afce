/** The "New cluster" form, shown in a JupyterLab dialog; its value is the native cluster spec. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { BatchAIClient } from './api';
import { h } from './dom';
import { ClusterFormValues, clusterRequest } from './model';
import { messageOf } from './panel';

const BACKENDS = ['local', 'ssh', 'azure', 'slurm'];

class ClusterForm extends Widget implements Dialog.IBodyWidget<ClusterFormValues> {
  private readonly inputs: Record<keyof ClusterFormValues, HTMLInputElement | HTMLSelectElement>;
  readonly errorLine = h('div', { className: 'bai-Error', role: 'alert', hidden: true });

  constructor(initial: Partial<ClusterFormValues>) {
    super();
    this.addClass('bai-ClusterForm');
    const text = (name: string, value = '', extra: Record<string, string> = {}) =>
      h('input', { className: 'jp-mod-styled', name, value, ...extra });
    this.inputs = {
      name: text('name', initial.name ?? '', { placeholder: 'e.g. gpu-pool', required: 'true' }),
      backend: h('select', { className: 'jp-mod-styled', name: 'backend' }, ...BACKENDS.map(b => h('option', { value: b }, b))),
      scaleMode: h(
        'select',
        { className: 'jp-mod-styled', name: 'scaleMode' },
        h('option', { value: 'manual' }, 'manual: a fixed number of nodes'),
        h('option', { value: 'auto' }, 'auto: between a minimum and a maximum')
      ),
      nodes: text('nodes', '1', { inputmode: 'numeric' }),
      minNodes: text('minNodes', '0', { inputmode: 'numeric' }),
      maxNodes: text('maxNodes', '2', { inputmode: 'numeric' }),
      idleSeconds: text('idleSeconds', '', { inputmode: 'numeric', placeholder: '300' }),
      vmPriority: h(
        'select',
        { className: 'jp-mod-styled', name: 'vmPriority' },
        h('option', { value: 'dedicated' }, 'dedicated'),
        h('option', { value: 'lowpriority' }, 'low priority')
      ),
      setupCommand: text('setupCommand', '', { placeholder: 'optional, runs on every new node' })
    };
    const row = (label: string, key: keyof ClusterFormValues, className = '') =>
      h('label', { className: `bai-FormRow ${className}` }, h('span', {}, label), this.inputs[key]);
    const manualRow = row('Nodes', 'nodes', 'bai-Manual');
    const autoRows = [row('Minimum nodes', 'minNodes', 'bai-Auto'), row('Maximum nodes', 'maxNodes', 'bai-Auto')];
    const showMode = () => {
      const auto = this.inputs.scaleMode.value === 'auto';
      manualRow.hidden = auto;
      autoRows.forEach(r => (r.hidden = !auto));
    };
    this.inputs.scaleMode.addEventListener('change', showMode);
    this.node.append(
      row('Name', 'name'),
      row('Backend', 'backend'),
      row('Scale', 'scaleMode'),
      manualRow,
      ...autoRows,
      row('Idle seconds before scale-down', 'idleSeconds'),
      row('VM priority', 'vmPriority'),
      row('Setup command', 'setupCommand'),
      this.errorLine
    );
    showMode();
  }

  getValue(): ClusterFormValues {
    const value = (key: keyof ClusterFormValues) => this.inputs[key].value;
    return {
      name: value('name'),
      backend: value('backend'),
      scaleMode: value('scaleMode') === 'auto' ? 'auto' : 'manual',
      nodes: value('nodes'),
      minNodes: value('minNodes'),
      maxNodes: value('maxNodes'),
      idleSeconds: value('idleSeconds'),
      vmPriority: value('vmPriority'),
      setupCommand: value('setupCommand')
    };
  }

  showError(message: string): void {
    this.errorLine.textContent = message;
    this.errorLine.hidden = !message;
  }
}

/**
 * Asks for a new cluster until the service accepts it or the user cancels; a rejected form is
 * shown again with its values and the reason. Resolves to the cluster's name, or null.
 */
export async function createClusterFromForm(client: BatchAIClient, workspace: string): Promise<string | null> {
  let values: Partial<ClusterFormValues> = {};
  let error = '';
  for (;;) {
    const form = new ClusterForm(values);
    restore(form, values);
    form.showError(error);
    const result = await showDialog({
      title: `New cluster in workspace ${workspace}`,
      body: form,
      focusNodeSelector: 'input[name="name"]',
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Create' })]
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    values = result.value;
    const request = clusterRequest(result.value);
    if (!request.ok) {
      error = request.error;
      continue;
    }
    try {
      await client.createCluster(workspace, request.name, request.spec);
      return request.name;
    } catch (failure) {
      error = `The service refused the cluster: ${messageOf(failure)}`;
    }
  }
}

function restore(form: ClusterForm, values: Partial<ClusterFormValues>): void {
  for (const [key, value] of Object.entries(values)) {
    const input = form.node.querySelector<HTMLInputElement | HTMLSelectElement>(`[name="${key}"]`);
    if (input && typeof value === 'string') {
      input.value = value;
      input.dispatchEvent(new Event('change'));
    }
  }
}
