/** A small SVG line chart of metric series, drawn with the theme's colours. */
import { MetricPoint, ParallelAxis, ParallelLine } from './model';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 480;
const HEIGHT = 160;
const PAD = 32;

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string | number>): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, String(value));
  }
  return element;
}

/** The scales of a chart over `points`: steps left to right, values bottom to top, each from its min to its max. */
function scales(points: MetricPoint[]) {
  const values = points.map(p => p.value);
  const steps = points.map(p => p.step);
  const [minV, maxV] = [Math.min(...values), Math.max(...values)];
  const [minS, maxS] = [Math.min(...steps), Math.max(...steps)];
  const x = (s: number) => PAD + ((s - minS) / (maxS - minS || 1)) * (WIDTH - 2 * PAD);
  const y = (v: number) => HEIGHT - PAD - ((v - minV) / (maxV - minV || 1)) * (HEIGHT - 2 * PAD);
  return { minV, maxV, minS, maxS, x, y };
}

/** A chart's axes, the value axis labelled with its min and max, the step axis with its range; its scales. */
function frame(ariaLabel: string, points: MetricPoint[]): { chart: SVGSVGElement; x: (s: number) => number; y: (v: number) => number } {
  const { minV, maxV, minS, maxS, x, y } = scales(points);
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': ariaLabel });
  chart.appendChild(svg('line', { x1: PAD, y1: HEIGHT - PAD, x2: WIDTH - PAD, y2: HEIGHT - PAD, class: 'bai-Axis' }));
  chart.appendChild(svg('line', { x1: PAD, y1: PAD, x2: PAD, y2: HEIGHT - PAD, class: 'bai-Axis' }));
  const label = (text: string, attributes: Record<string, string | number>) => {
    const element = svg('text', { class: 'bai-AxisLabel', ...attributes });
    element.textContent = text;
    chart.appendChild(element);
  };
  label(formatNumber(maxV), { x: 2, y: PAD - 6, 'data-axis': 'y-max' });
  label(formatNumber(minV), { x: 2, y: HEIGHT - PAD + 12, 'data-axis': 'y-min' });
  label(`step ${maxS}`, { x: WIDTH - PAD, y: HEIGHT - 8, 'text-anchor': 'end', 'data-axis': 'x-max' });
  if (minS !== maxS) {
    label(`step ${minS}`, { x: PAD, y: HEIGHT - 8, 'data-axis': 'x-min' });
  }
  return { chart, x, y };
}

/** One chart, with its own value axis, per series: metrics of different scales (loss, lr) stay readable. */
export function metricCharts(series: Map<string, MetricPoint[]>): HTMLElement {
  const container = document.createElement('div');
  container.className = 'bai-Charts';
  [...series].forEach(([name, points], index) => container.appendChild(lineChart(name, points, PALETTE[index % PALETTE.length])));
  return container;
}

function lineChart(name: string, points: MetricPoint[], colour: string): Element {
  const figure = document.createElement('figure');
  figure.className = 'bai-Chart';
  figure.dataset.metric = name;
  const last = points[points.length - 1].value;
  const { chart, x, y } = frame(`${name}: ${points.length} points, last ${last}`, points);
  chart.appendChild(svg('polyline', { points: points.map(p => `${x(p.step)},${y(p.value)}`).join(' '), class: 'bai-Line', style: `stroke: ${colour}` }));
  const caption = document.createElement('figcaption');
  const swatch = document.createElement('span');
  swatch.className = 'bai-Swatch';
  swatch.style.background = colour;
  caption.append(swatch, `${name} (last: ${formatNumber(last)})`);
  figure.append(caption, chart);
  return figure;
}

function formatNumber(value: number): string {
  return Math.abs(value) >= 1000 || (Math.abs(value) < 0.01 && value !== 0) ? value.toExponential(2) : String(Number(value.toFixed(4)));
}

/** One line of an overlaid chart: a run's (or trial's) points of one metric. */
export interface OverlaidSeries {
  label: string;
  points: MetricPoint[];
  greyed?: boolean; // a pruned trial
}

/** Line colours: the theme's own, so they keep their contrast in light and dark themes. */
const PALETTE = [
  'var(--jp-brand-color1)',
  'var(--jp-warn-color1)',
  'var(--jp-success-color1)',
  'var(--jp-error-color1)',
  'var(--jp-accent-color1)',
  'var(--jp-info-color0)'
];

/** Several runs' curves of one metric on shared axes, with a legend; greyed lines are drawn first, behind. */
export function overlayChart(metric: string, lines: OverlaidSeries[]): HTMLElement {
  const figure = document.createElement('figure');
  figure.className = 'bai-Chart bai-Overlay';
  figure.dataset.metric = metric;
  const drawn = lines.filter(line => line.points.length);
  const points = drawn.flatMap(line => line.points);
  const caption = document.createElement('figcaption');
  caption.textContent = metric;
  figure.appendChild(caption);
  if (!points.length) {
    return figure;
  }
  const { chart, x, y } = frame(`${metric} of ${drawn.length} runs`, points);
  const legend = document.createElement('ul');
  legend.className = 'bai-Legend';
  const ordered = [...drawn.filter(l => l.greyed), ...drawn.filter(l => !l.greyed)];
  ordered.forEach((line, index) => {
    const colour = line.greyed ? 'var(--jp-layout-color4)' : PALETTE[index % PALETTE.length];
    const polyline = svg('polyline', {
      points: line.points.map(p => `${x(p.step)},${y(p.value)}`).join(' '),
      class: line.greyed ? 'bai-Line bai-Greyed' : 'bai-Line',
      style: `stroke: ${colour}`,
      'data-series': line.label
    });
    chart.appendChild(polyline);
    const item = document.createElement('li');
    item.dataset.series = line.label;
    item.className = line.greyed ? 'bai-Greyed' : '';
    const swatch = document.createElement('span');
    swatch.className = 'bai-Swatch';
    swatch.style.background = colour;
    item.append(swatch, `${line.label} (last: ${formatNumber(line.points[line.points.length - 1].value)})`);
    legend.appendChild(item);
  });
  figure.append(chart, legend);
  return figure;
}

/** Parameters against a metric: one vertical axis each, one line per run, the better its metric the bolder. */
export function parallelChart(axes: ParallelAxis[], lines: ParallelLine[]): HTMLElement {
  const figure = document.createElement('figure');
  figure.className = 'bai-Chart bai-Parallel';
  const caption = document.createElement('figcaption');
  caption.textContent = `${axes.map(a => a.label).join(', ')}: the better a run's ${axes[axes.length - 1]?.label ?? 'metric'}, the stronger its line`;
  figure.appendChild(caption);
  const width = Math.max(WIDTH, 120 * axes.length);
  const x = (i: number) => PAD * 2 + (axes.length > 1 ? (i / (axes.length - 1)) * (width - 4 * PAD) : 0);
  const y = (position: number) => HEIGHT - PAD - position * (HEIGHT - 2 * PAD);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${HEIGHT}`, role: 'img', 'aria-label': `Parameters against ${axes[axes.length - 1]?.label ?? ''} of ${lines.length} runs` });
  const ordered = [...lines].sort((a, b) => Number(!a.pruned) - Number(!b.pruned) || (a.score ?? -1) - (b.score ?? -1));
  for (const line of ordered) {
    const points = line.positions.map((p, i) => (p === null ? null : `${x(i)},${y(p)}`)).filter(p => p !== null);
    const opacity = line.pruned ? 0.6 : 0.25 + 0.75 * (line.score ?? 0);
    chart.appendChild(
      svg('polyline', {
        points: points.join(' '),
        class: line.pruned ? 'bai-Line bai-Greyed' : 'bai-Line',
        style: line.pruned ? 'stroke: var(--jp-layout-color4)' : `stroke-opacity: ${opacity.toFixed(2)}`,
        'data-run': line.run
      })
    );
  }
  axes.forEach((axis, i) => {
    chart.appendChild(svg('line', { x1: x(i), y1: PAD, x2: x(i), y2: HEIGHT - PAD, class: 'bai-Axis' }));
    const name = svg('text', { x: x(i), y: PAD - 12, class: 'bai-AxisLabel bai-AxisName', 'text-anchor': 'middle' });
    name.textContent = axis.label;
    chart.appendChild(name);
    for (const tick of axis.ticks) {
      const label = svg('text', { x: x(i) + 4, y: y(tick.position) + 3, class: 'bai-AxisLabel' });
      label.textContent = tick.label;
      chart.appendChild(label);
    }
  });
  figure.appendChild(chart);
  return figure;
}
