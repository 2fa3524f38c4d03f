// Numbers, money and times for people.
import {h} from './dom.js';

const intFmt = new Intl.NumberFormat('en-US');
const usd2 = new Intl.NumberFormat('en-US', {style: 'currency', currency: 'USD'});
const usd4 = new Intl.NumberFormat('en-US', {
  style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4,
});
const usdSig = new Intl.NumberFormat('en-US', {
  style: 'currency', currency: 'USD', maximumSignificantDigits: 2,
});

export function num(n) {
  if (n === null || n === undefined || n === '') return '—';
  return intFmt.format(n);
}

export function money(x) {
  if (x === null || x === undefined) return '—';
  x = Number(x);
  if (x === 0) return '$0.00';
  if (Math.abs(x) >= 1) return usd2.format(x);
  if (Math.abs(x) >= 0.01) return usd4.format(x);
  return usdSig.format(x);
}

// Money with the exact figure on hover.
export function moneyEl(x) {
  return h('span.num', {title: x === null || x === undefined ? null : '$' + String(x)}, money(x));
}

export function ms(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (v < 1000) return Math.round(v) + ' ms';
  if (v < 60000) return (v / 1000).toFixed(v < 10000 ? 2 : 1) + ' s';
  return (v / 60000).toFixed(1) + ' min';
}

const rtf = new Intl.RelativeTimeFormat('en', {numeric: 'auto'});
const exact = new Intl.DateTimeFormat('en-GB', {
  year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit',
  second: '2-digit', timeZoneName: 'short',
});

export function relative(ts, now = Date.now()) {
  const t = new Date(ts).getTime();
  if (Number.isNaN(t)) return '—';
  const d = (t - now) / 1000;
  const a = Math.abs(d);
  if (a < 45) return rtf.format(Math.round(d), 'second');
  if (a < 2700) return rtf.format(Math.round(d / 60), 'minute');
  if (a < 64800) return rtf.format(Math.round(d / 3600), 'hour');
  if (a < 26 * 86400) return rtf.format(Math.round(d / 86400), 'day');
  if (a < 320 * 86400) return rtf.format(Math.round(d / (30 * 86400)), 'month');
  return rtf.format(Math.round(d / (365 * 86400)), 'year');
}

// A <time> that says "3 minutes ago" and shows the exact time on hover.
export function timeEl(ts, empty = '—') {
  if (!ts) return h('span.muted', empty);
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return h('span', String(ts));
  return h('time', {datetime: d.toISOString(), title: exact.format(d)}, relative(d));
}

export function day(d) {
  return d.toISOString().slice(0, 10);
}

export function daysAgo(n) {
  return day(new Date(Date.now() - n * 86400000));
}
