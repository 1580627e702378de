// chart.js - messages per minute over a campaign's life, drawn by uPlot
// from GET .../campaigns/{id}/timeline.  uPlot shows times in the
// browser's time zone.
import uPlot from './vendor/uplot.js';
import { html, useEffect, useRef, num } from './ui.js';

function series(tl) {
  const per = (tl.bucket_seconds || 60) / 60;
  const xs = tl.points.map((p) => Date.parse(p.at) / 1000);
  const ys = tl.points.map((p) => p.sent / per);
  return [xs, ys];
}

// From the start to the end (or now): at least ten minutes while it runs,
// five intervals once it is over, so a short campaign is not one thin line.
function xRange(tl) {
  const a = Date.parse(tl.start) / 1000;
  const min = tl.status === 'sending' || tl.status === 'paused' ? 600 : 5 * tl.bucket_seconds;
  return [a, Math.max(Date.parse(tl.end) / 1000, a + min)];
}

export function Timeline({ timeline }) {
  const box = useRef();
  const plot = useRef();
  useEffect(() => {
    if (!timeline || !timeline.points.length) return;
    const data = series(timeline);
    box.current.timeline = timeline;
    if (plot.current && !box.current.contains(plot.current.root)) {
      plot.current.destroy(); // its box was replaced: draw anew
      plot.current = null;
    }
    if (plot.current) {
      plot.current.setData(data);
      return;
    }
    const width = Math.max(260, box.current.clientWidth);
    plot.current = new uPlot({
      width, height: 220,
      scales: {
        x: { time: true, range: () => xRange(box.current.timeline) },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{}, { label: 'messages / min', values: (u, ticks) => ticks.map(num) }],
      series: [{ label: 'Time' }, {
        label: 'Sent per minute', stroke: '#1d4ed8', fill: 'rgba(29,78,216,0.35)', width: 2,
        paths: uPlot.paths.bars({ size: [0.9, 48], align: 1 }), points: { show: false },
        value: (u, v) => (v === null ? '–' : num(Math.round(v))) }],
      legend: { show: false },
    }, data, box.current);
  }, [timeline]);
  useEffect(() => {
    const resize = () => plot.current && box.current &&
      plot.current.setSize({ width: Math.max(260, box.current.clientWidth), height: 220 });
    addEventListener('resize', resize);
    return () => {
      removeEventListener('resize', resize);
      if (plot.current) plot.current.destroy();
      plot.current = null;
    };
  }, []);
  if (!timeline) return null;
  if (!timeline.points.length)
    return html`<div class="empty">Nothing sent yet: the chart starts when the campaign does.</div>`;
  const total = timeline.points.reduce((a, p) => a + p.sent, 0);
  return html`<figure class="chart">
    <div ref=${box} class="chart-box" role="img"
      aria-label=${`Messages sent per minute: ${num(total)} in ${timeline.points.length} intervals of ${timeline.bucket_seconds / 60} min`}></div>
    <figcaption class="muted">Messages sent per minute (intervals of ${num(timeline.bucket_seconds / 60)} min)</figcaption>
  </figure>`;
}
