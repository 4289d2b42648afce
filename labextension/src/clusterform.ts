/** The "New cluster" form, shown in a JupyterLab dialog; its value is the native cluster spec. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { BatchAIClient } from './api';
import { append, h } from './dom';
import { BACKEND_FIELDS, BackendInfo, ClusterFormValues, clusterRequest } from './model';
import { messageOf } from './panel';

type Field = keyof ClusterFormValues;

class ClusterForm extends Widget implements Dialog.IBodyWidget<ClusterFormValues> {
  private readonly inputs: Record<Field, HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>;
  readonly errorLine = h('div', { className: 'bai-Error', role: 'alert', hidden: true });

  /** Offers the backends that can create a cluster here; the others are named, with why, below the choice. */
  constructor(initial: Partial<ClusterFormValues>, backends: BackendInfo[]) {
    super();
    this.addClass('bai-ClusterForm');
    const text = (name: string, value = '', extra: Record<string, string> = {}) =>
      h('input', { className: 'jp-mod-styled', name, value, ...extra });
    this.inputs = {
      name: text('name', initial.name ?? '', { placeholder: 'e.g. gpu-pool', required: 'true' }),
      backend: h(
        'select',
        { className: 'jp-mod-styled', name: 'backend' },
        ...backends.filter(b => b.available).map(b => h('option', { value: b.name }, b.name))
      ),
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
      setupCommand: text('setupCommand', '', { placeholder: 'optional, runs on every new node' }),
      hosts: h('textarea', { className: 'jp-mod-styled', name: 'hosts', rows: 2, placeholder: 'gpu1, alice@gpu2:2222' }),
      user: text('user', '', { placeholder: 'for hosts given without user@' }),
      keyFile: text('keyFile', '', { placeholder: '~/.ssh/id_ed25519, or empty: the SSH agent' })
    };
    const row = (label: string, key: Field, className = '') =>
      h('label', { className: `bai-FormRow ${className}` }, h('span', {}, label), this.inputs[key]);
    const manualRow = row('Nodes', 'nodes', 'bai-Manual');
    const autoRows = [row('Minimum nodes', 'minNodes', 'bai-Auto'), row('Maximum nodes', 'maxNodes', 'bai-Auto')];
    const showMode = () => {
      const auto = this.inputs.scaleMode.value === 'auto';
      manualRow.hidden = auto;
      autoRows.forEach(r => (r.hidden = !auto));
    };
    this.inputs.scaleMode.addEventListener('change', showMode);
    // Each backend's own fields, shown only while it is chosen.
    const backendRows = Object.entries(BACKEND_FIELDS).flatMap(([backend, fields]) =>
      fields.map(field => ({ backend, row: row(FIELD_LABELS[field] ?? field, field, `bai-Backend-${backend}`) }))
    );
    const showBackend = () => backendRows.forEach(({ backend, row }) => (row.hidden = this.inputs.backend.value !== backend));
    this.inputs.backend.addEventListener('change', showBackend);
    const notOffered = backends.filter(b => !b.available);
    append(
      this.node,
      row('Name', 'name'),
      row('Backend', 'backend'),
      notOffered.length
        ? h('div', { className: 'bai-Hint bai-NotOffered' }, ...notOffered.map(b => h('div', {}, `${b.name}: ${b.reason ?? 'not available'}`)))
        : null,
      ...backendRows.map(r => r.row),
      row('Scale', 'scaleMode'),
      manualRow,
      ...autoRows,
      row('Idle seconds before scale-down', 'idleSeconds'),
      row('VM priority', 'vmPriority'),
      row('Setup command', 'setupCommand'),
      this.errorLine
    );
    showMode();
    showBackend();
  }

  getValue(): ClusterFormValues {
    const value = (key: Field) => this.inputs[key].value;
    return {
      name: value('name'),
      backend: value('backend'),
      scaleMode: value('scaleMode') === 'auto' ? 'auto' : 'manual',
      nodes: value('nodes'),
      minNodes: value('minNodes'),
      maxNodes: value('maxNodes'),
      idleSeconds: value('idleSeconds'),
      vmPriority: value('vmPriority'),
      setupCommand: value('setupCommand'),
      hosts: value('hosts'),
      user: value('user'),
      keyFile: value('keyFile')
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
  const backends = await client.backends();
  let values: Partial<ClusterFormValues> = {};
  let error = '';
  for (;;) {
    const form = new ClusterForm(values, backends);
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

const FIELD_LABELS: Partial<Record<Field, string>> = { hosts: 'Hosts', user: 'User', keyFile: 'Private key file' };

function restore(form: ClusterForm, values: Partial<ClusterFormValues>): void {
  for (const [key, value] of Object.entries(values)) {
    const input = form.node.querySelector<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>(`[name="${key}"]`);
    if (input && typeof value === 'string') {
      input.value = value;
      input.dispatchEvent(new Event('change'));
    }
  }
}
