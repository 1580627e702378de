// ui.js - what every page shares: the html tag, formatting for the
// browser's locale and time zone, and small components (errors, empty
// states, progress, confirmation, copy, paging).
import { h, render } from './vendor/preact.js';
import { useState, useEffect, useRef, useCallback } from './vendor/hooks.js';
import htm from './vendor/htm.js';

export const html = htm.bind(h);
export { useState, useEffect, useRef, useCallback };

const numberFmt = new Intl.NumberFormat();
const pctFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const timeFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit',
  timeZoneName: 'short' });
export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

export const num = (n) => (n === null || n === undefined ? '–' : numberFmt.format(n));
export const pct = (n) => pctFmt.format(n || 0) + ' %';
const timeSecFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit',
  timeZoneName: 'short' });
export const time = (s) => (s ? timeFmt.format(new Date(s)) : '–');
export const timeSec = (s) => (s ? timeSecFmt.format(new Date(s)) : '–');

// Loads fn() when deps change; returns {data, error, loading, reload}.
export function useLoad(fn, deps) {
  const [state, set] = useState({ loading: true });
  const seq = useRef(0);
  const reload = useCallback(() => {
    const mine = ++seq.current;
    return fn().then(
      (data) => { if (mine === seq.current) set({ data }); },
      (error) => { if (mine === seq.current) set({ error }); });
  }, deps);
  useEffect(() => { set({ loading: true }); reload(); }, [reload]);
  return { ...state, reload };
}

// Calls fn every ms while `on`; stops when `on` turns false or on unmount.
export function usePoll(fn, ms, on) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!on) return undefined;
    const t = setInterval(() => saved.current(), ms);
    return () => clearInterval(t);
  }, [on, ms]);
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message}</p>`;
}

export function Loading({ what }) {
  return html`<p class="muted" aria-live="polite">Loading ${what}…</p>`;
}

export function Empty({ children }) {
  return html`<div class="empty">${children}</div>`;
}

// text: what the bar says instead of its percentage (e.g. "12 of 300 sent").
export function Progress({ value, label, text }) {
  const v = Math.max(0, Math.min(100, value || 0));
  return html`<div class="progress" role="progressbar" aria-label=${label || 'Progress'}
      aria-valuemin="0" aria-valuemax="100" aria-valuenow=${Math.round(v)} aria-valuetext=${text}>
    <div class="track"><div class="bar" style=${{ width: v + '%' }}></div></div><span>${text || pct(v)}</span></div>`;
}

export function Status({ s }) {
  return html`<span class=${'badge s-' + s}>${s}</span>`;
}

export function Copy({ text, label }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try { await navigator.clipboard.writeText(text); } catch (e) { /* shown below */ }
    setDone(true);
    setTimeout(() => setDone(false), 2000);
  };
  return html`<button type="button" class="small" onClick=${copy}
      aria-label=${(label || 'Copy') + (done ? ': copied' : '')}>${done ? 'Copied' : (label || 'Copy')}</button>`;
}

// A secret the API shows only once (a key, a webhook's signing secret).
export function Secret({ title, value, id, copyLabel, onDone }) {
  return html`<div class="secret" role="status">
    <p><strong>${title}</strong></p>
    <p><code class="wrap" id=${id}>${value}</code> <${Copy} text=${value} label=${copyLabel} /></p>
    <button type="button" class="small" onClick=${onDone}>I have copied it</button></div>`;
}

// A datetime-local input's value (the browser's zone) as RFC 3339 UTC, or ''.
export function isoOf(local) {
  const d = local ? new Date(local) : null;
  return d && !isNaN(d) ? d.toISOString() : '';
}

// <option>s for a filter <select>: '' first (labelled `any`), then values.
export function options(values, any, labels) {
  return [html`<option value="">${any}</option>`].concat(values.map((v) =>
    html`<option value=${v}>${(labels && labels[v]) || v}</option>`));
}

// Filters a list page applies: selects at once, text fields on Enter or
// "Apply".  Returns {draft, applied, set(key, now), apply}.
export function useFilters(initial, onApply) {
  const [draft, setDraft] = useState(initial);
  const [applied, setApplied] = useState(initial);
  const apply = (f) => { setApplied(f || draft); if (onApply) onApply(); };
  const set = (k, now) => (e) => {
    const f = { ...draft, [k]: e.target.value };
    setDraft(f);
    if (now) apply(f);
  };
  return { draft, applied, set, apply };
}

// Paging for the API's {total, limit, offset} envelope.
export function Pager({ page, onOffset }) {
  if (!page || page.total <= page.limit) return null;
  const from = page.total ? page.offset + 1 : 0;
  const to = Math.min(page.offset + page.limit, page.total);
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" disabled=${page.offset === 0}
      onClick=${() => onOffset(Math.max(0, page.offset - page.limit))}>Previous</button>
    <span>${num(from)}–${num(to)} of ${num(page.total)}</span>
    <button type="button" disabled=${to >= page.total}
      onClick=${() => onOffset(page.offset + page.limit)}>Next</button></nav>`;
}

// A modal confirmation (the native <dialog>: focus moves in and Escape closes).
export function confirmAction(message, action, danger) {
  return new Promise((resolve) => {
    const host = document.createElement('div');
    document.body.appendChild(host);
    const close = (v) => { render(null, host); host.remove(); resolve(v); };
    function Dialog() {
      const ref = useRef();
      useEffect(() => { ref.current.showModal(); }, []);
      return html`<dialog ref=${ref} class="confirm" aria-labelledby="confirm-text"
          onCancel=${(e) => { e.preventDefault(); close(false); }}>
        <p id="confirm-text">${message}</p>
        <div class="row end">
          <button type="button" onClick=${() => close(false)}>Keep as is</button>
          <button type="button" class=${danger ? 'danger' : 'primary'} autofocus
            onClick=${() => close(true)}>${action}</button>
        </div></dialog>`;
    }
    render(html`<${Dialog} />`, host);
  });
}

// A labelled input; `error` is an ApiError naming this field, shown under it.
export function Field({ id, label, error, hint, children }) {
  const mine = error && (error.field === id || (error.field && error.field === id.replace(/_body$/, '')));
  const where = mine && error.line && !/line \d+/i.test(error.message) ? `Line ${error.line}, column ${error.column}: ` : '';
  return html`<div class=${'field' + (mine ? ' invalid' : '')}>
    <label for=${id}>${label}</label>
    ${children}
    ${hint && html`<small class="hint" id=${id + '-hint'}>${hint}</small>`}
    ${mine && html`<p class="field-error" id=${id + '-error'} role="alert">${where}${error.message}</p>`}
  </div>`;
}

// The accessibility attributes of the control of Field id (its hint and error).
export const described = (id, error) => ({
  'aria-describedby': `${id}-hint ${id}-error`,
  'aria-invalid': error && error.field === id ? 'true' : undefined,
});

// A form's submit: runs fn, keeps the error, disables while busy.
export function useSubmit(fn) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    if (e && e.preventDefault) e.preventDefault();
    setBusy(true);
    setError(null);
    try { await fn(e); } catch (err) { setError(err); } finally { setBusy(false); }
  };
  return { busy, error, setError, submit };
}
