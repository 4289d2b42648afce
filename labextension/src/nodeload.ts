/**
 * A table of nodes and what each uses (CPU, memory, GPU), for the panel's clusters and a job's view.
 * Its rows are replaced on every read; the service samples at most every 2–3 s.
 */
import { h, replaceChildren, stateBadge } from './dom';
import { ClusterNode, cpuText, gpuText, memoryText } from './model';

/** How often node loads are read again: no faster than the service samples them. */
export const NODE_LOAD_POLL_MS = 3000;

export function nodeLoadTable(label: string): { table: HTMLTableElement; body: HTMLTableSectionElement } {
  const body = h('tbody');
  const table = h(
    'table',
    { className: 'bai-Table bai-NodeLoad', 'aria-label': label },
    h('thead', {}, h('tr', {}, ...['Node', 'State', 'Load'].map(c => h('th', { scope: 'col' }, c)))),
    body
  );
  return { table, body };
}

/** One row per node: its name (and cluster, when given), state and CPU / memory / GPU lines. */
export function renderNodeLoads(body: HTMLTableSectionElement, nodes: { node: ClusterNode; cluster?: string }[], empty: string): void {
  if (!nodes.length) {
    replaceChildren(body, h('tr', { className: 'bai-Empty' }, h('td', { colspan: 3 }, empty)));
    return;
  }
  const line = (what: string, text: string) => h('div', { className: 'bai-LoadLine', 'data-load': what }, `${what} ${text}`);
  replaceChildren(
    body,
    ...nodes.map(({ node, cluster }) =>
      h(
        'tr',
        { 'data-node': node.nodeId, 'data-node-cluster': cluster },
        h('td', {}, h('div', { className: 'bai-Name' }, node.nodeId), cluster ? h('div', { className: 'bai-Detail' }, cluster) : null),
        h('td', {}, stateBadge(node.state)),
        h(
          'td',
          { className: 'bai-Load' },
          line('CPU', cpuText(node.load)),
          line('Mem', memoryText(node.load)),
          node.load?.gpus?.length ? line('GPU', gpuText(node.load)) : null
        )
      )
    )
  );
}
