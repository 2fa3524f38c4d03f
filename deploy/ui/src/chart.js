// Charts with uPlot (deploy/ui/package.json pins it; build.sh copies it
// into the served tree; index.html loads it before the modules run).
import {h} from './dom.js';
import {money, num} from './fmt.js';

const ACCENT = '#2f5bd3';
const SECOND = '#e0872b';

function sized(box, make) {
  const width = () => Math.max(280, box.clientWidth - 8);
  const u = make(width());
  const ro = new ResizeObserver(() => u.setSize({width: width(), height: u.height}));
  ro.observe(box);
  return () => {
    ro.disconnect();
    u.destroy();
  };
}

// Spend (bars, left axis) and requests (line, right axis) per day.
// days: [{date: 'YYYY-MM-DD', spend, requests}]. Returns a stop function.
export function dailyChart(box, days, height = 280) {
  const U = window.uPlot;
  if (!U) {
    box.appendChild(h('p.muted', 'Chart library not loaded.'));
    return () => {};
  }
  const xs = days.map((d) => Date.parse(d.date + 'T00:00:00Z') / 1000);
  const data = [xs, days.map((d) => d.spend), days.map((d) => d.requests)];
  const bars = U.paths && U.paths.bars ? U.paths.bars({size: [0.6, 48]}) : undefined;
  return sized(box, (width) => new U({
    width, height,
    tzDate: (ts) => U.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
    cursor: {points: {size: 7}},
    legend: {live: true},
    // Half a day either side, so the first and last bars show whole.
    scales: {x: {time: true, range: (u, lo, hi) => [lo - 43200, hi + 43200]}, usd: {range: (u, lo, hi) => [0, hi > 0 ? hi * 1.15 : 1]},
      req: {range: (u, lo, hi) => [0, hi > 0 ? Math.ceil(hi * 1.15) : 1]}},
    axes: [
      {stroke: '#6b7487', grid: {show: false}, ticks: {stroke: '#e3e7ee'}},
      {scale: 'usd', stroke: '#6b7487', grid: {stroke: '#eef1f5'}, ticks: {show: false}, size: 70,
        values: (u, vals) => vals.map((v) => money(v))},
      {scale: 'req', side: 1, stroke: '#6b7487', grid: {show: false}, ticks: {show: false}, size: 50,
        values: (u, vals) => vals.map((v) => num(v))},
    ],
    series: [
      {value: (u, v) => (v == null ? '—' : new Date(v * 1000).toISOString().slice(0, 10))},
      {label: 'Spend', scale: 'usd', stroke: ACCENT, fill: 'rgba(47, 91, 211, 0.55)', width: 1, paths: bars,
        points: {show: false}, value: (u, v) => (v == null ? '—' : money(v))},
      {label: 'Requests', scale: 'req', stroke: SECOND, width: 2, points: {show: true, size: 5, fill: SECOND},
        value: (u, v) => (v == null ? '—' : num(v))},
    ],
  }, data, box));
}

// A small live line (the last samples of one figure).
export function sparkline(box, label, fmt, height = 190) {
  const U = window.uPlot;
  const xs = [];
  const ys = [];
  if (!U) return {push() {}, stop() {}};
  let u = null;
  const stop = sized(box, (width) => {
    u = new U({
      width, height,
      legend: {show: false},
      cursor: {show: false},
      scales: {x: {time: true}, y: {range: (uu, lo, hi) => [0, hi > 0 ? hi * 1.2 : 1]}},
      axes: [{show: false},
        {stroke: '#6b7487', grid: {stroke: '#eef1f5'}, ticks: {show: false}, size: 48, values: (uu, vals) => vals.map(fmt)}],
      series: [{}, {label, stroke: ACCENT, fill: 'rgba(47, 91, 211, 0.12)', width: 2, points: {show: false}}],
    }, [xs, ys], box);
    return u;
  });
  return {
    push(t, v) {
      xs.push(t);
      ys.push(v);
      if (xs.length > 60) {
        xs.shift();
        ys.shift();
      }
      u.setData([xs, ys]);
    },
    stop,
  };
}
