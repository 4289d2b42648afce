/**
 * batchai-jupyter's JupyterLab plugin: the Batch AI panel in the left sidebar, job views in the
 * main area, experiments (runs compared, sweeps watched) and TensorBoard in the main area, and palette
 * commands (refresh, new cluster, open job, open experiment, insert a %%batchai_job cell).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { BatchAIClient, ExperimentKey, JobKey } from './api';
import { createClusterFromForm } from './clusterform';
import { ExperimentView } from './experimentview';
import { pickJob } from './jobpicker';
import { JobView } from './jobview';
import { LOAD_EXTENSION, jobCellTemplate, needsExtensionCell } from './model';
import { BatchAIPanel, messageOf } from './panel';
import { tensorBoardTab } from './tensorboard';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
  '<rect x="3" y="3" width="8" height="8" rx="1"/><rect x="13" y="3" width="8" height="8" rx="1"/>' +
  '<rect x="3" y="13" width="8" height="8" rx="1"/><path d="M13 17h8v2h-8zM13 13h8v2h-8z"/></g></svg>';

export const batchaiIcon = new LabIcon({ name: 'batchai-jupyter:panel', svgstr: ICON_SVG });

export namespace CommandIDs {
  export const refresh = 'batchai:refresh';
  export const newCluster = 'batchai:new-cluster';
  export const openJob = 'batchai:open-job';
  export const openExperiment = 'batchai:open-experiment';
  export const openTensorBoard = 'batchai:open-tensorboard';
  export const insertJobCell = 'batchai:insert-job-cell';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'batchai-jupyter:plugin',
  description: 'Batch AI clusters, jobs, live logs and output files in a side panel.',
  autoStart: true,
  optional: [ICommandPalette, INotebookTracker, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null,
    restorer: ILayoutRestorer | null
  ) => {
    const client = new BatchAIClient(app.serviceManager.serverSettings);
    const jobViews = new WidgetTracker<MainAreaWidget<JobView>>({ namespace: 'batchai-job' });
    const experimentViews = new WidgetTracker<MainAreaWidget<ExperimentView>>({ namespace: 'batchai-experiment' });

    const openTensorBoard = async (key: ExperimentKey, job?: string) => {
      try {
        const widget = await tensorBoardTab(client, key, job, batchaiIcon);
        const open = [...app.shell.widgets('main')].find(w => w.id === widget.id);
        if (open) {
          widget.dispose();
          app.shell.activateById(open.id);
          return;
        }
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
      } catch (failure) {
        panel.showError(`TensorBoard over ${job ?? key.experiment}: ${messageOf(failure)}`);
      }
    };

    const openExperiment = (key: ExperimentKey) => {
      const open = experimentViews.find(w => w.content.key.workspace === key.workspace && w.content.key.experiment === key.experiment);
      if (open) {
        app.shell.activateById(open.id);
        open.content.refresh();
        return;
      }
      const content = new ExperimentView(client, key, { openJob, openTensorBoard: k => void openTensorBoard(k) });
      const widget = new MainAreaWidget({ content });
      widget.id = content.id;
      widget.title.label = content.title.label;
      widget.title.caption = content.title.caption;
      widget.title.icon = batchaiIcon;
      void experimentViews.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };

    const openJob = (key: JobKey) => {
      const open = jobViews.find(w => sameJob(w.content.key, key));
      if (open) {
        app.shell.activateById(open.id);
        open.content.refresh();
        return;
      }
      const widget = new MainAreaWidget({
        content: new JobView(client, key, { openTensorBoard: k => void openTensorBoard(k, k.name), openExperiment })
      });
      widget.id = widget.content.id;
      widget.title.label = widget.content.title.label;
      widget.title.caption = widget.content.title.caption;
      widget.title.icon = batchaiIcon;
      void jobViews.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };

    const newCluster = async (workspace: string) => {
      try {
        if (await createClusterFromForm(client, workspace)) {
          panel.scheduleRefresh(0);
        }
      } catch (failure) {
        panel.showError(`New cluster: ${messageOf(failure)}`);
      }
    };

    const panel = new BatchAIPanel(client, { openJob, openExperiment, newCluster: w => void newCluster(w) });
    panel.title.icon = batchaiIcon;
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'batchai-panel');

    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Batch AI: Refresh Clusters and Jobs',
      execute: () => panel.refresh()
    });
    app.commands.addCommand(CommandIDs.newCluster, {
      label: 'Batch AI: New Cluster…',
      execute: () => newCluster(panel.workspace)
    });
    app.commands.addCommand(CommandIDs.openJob, {
      label: 'Batch AI: Open Job…',
      execute: async args => {
        let key: JobKey | null = null;
        if (typeof args.name === 'string') {
          key = {
            workspace: String(args.workspace ?? panel.workspace),
            experiment: String(args.experiment ?? 'default'),
            name: args.name
          };
        } else {
          try {
            key = await pickJob(client, panel.workspace);
          } catch (failure) {
            panel.showError(`Open Job: ${messageOf(failure)}`);
          }
        }
        if (key) {
          openJob(key);
        }
      }
    });
    app.commands.addCommand(CommandIDs.openExperiment, {
      label: 'Batch AI: Compare Runs of an Experiment…',
      execute: async args => {
        let experiment = typeof args.experiment === 'string' ? args.experiment : '';
        if (!experiment) {
          const answer = await InputDialog.getText({ title: 'Open Batch AI experiment', label: 'Experiment', placeholder: 'default' });
          experiment = answer.button.accept ? (answer.value ?? '').trim() : '';
        }
        if (experiment) {
          openExperiment({ workspace: String(args.workspace ?? panel.workspace), experiment });
        }
      }
    });
    app.commands.addCommand(CommandIDs.openTensorBoard, {
      label: 'Batch AI: Open TensorBoard…',
      execute: async args => {
        let experiment = typeof args.experiment === 'string' ? args.experiment : '';
        if (!experiment) {
          const answer = await InputDialog.getText({
            title: 'TensorBoard over an experiment or a job',
            label: 'Experiment, or experiment/job',
            placeholder: 'default'
          });
          experiment = answer.button.accept ? (answer.value ?? '').trim() : '';
        }
        const [name, job] = experiment.includes('/') ? experiment.split('/', 2) : [experiment, typeof args.job === 'string' ? args.job : undefined];
        if (name) {
          await openTensorBoard({ workspace: String(args.workspace ?? panel.workspace), experiment: name }, job);
        }
      }
    });
    app.commands.addCommand(CommandIDs.insertJobCell, {
      label: 'Batch AI: Insert %%batchai_job Cell',
      isEnabled: () => !!notebooks?.currentWidget,
      execute: args => {
        const notebook = notebooks?.currentWidget?.content;
        if (!notebook) {
          return;
        }
        const sources = notebook.widgets.map(cell => cell.model.sharedModel.getSource());
        const cluster = typeof args.cluster === 'string' ? args.cluster : panel.defaultCluster();
        const cells = needsExtensionCell(sources) ? [LOAD_EXTENSION, jobCellTemplate(cluster)] : [jobCellTemplate(cluster)];
        for (const source of cells) {
          if (notebook.activeCell?.model.sharedModel.getSource().trim()) {
            NotebookActions.insertBelow(notebook); // keep the user's cell; an empty one is reused
          }
          NotebookActions.changeCellType(notebook, 'code');
          notebook.activeCell?.model.sharedModel.setSource(source);
        }
      }
    });
    // Job and experiment views open after a page reload as they were (the commands reopen them by name).
    void restorer?.restore(jobViews, {
      command: CommandIDs.openJob,
      args: widget => ({ ...widget.content.key }),
      name: widget => `${widget.content.key.workspace}/${widget.content.key.experiment}/${widget.content.key.name}`
    });
    void restorer?.restore(experimentViews, {
      command: CommandIDs.openExperiment,
      args: widget => ({ ...widget.content.key }),
      name: widget => `${widget.content.key.workspace}/${widget.content.key.experiment}`
    });
    for (const command of Object.values(CommandIDs)) {
      palette?.addItem({ command, category: 'Batch AI' });
    }
  }
};

function sameJob(a: JobKey, b: JobKey): boolean {
  return a.workspace === b.workspace && a.experiment === b.experiment && a.name === b.name;
}

export default plugin;
