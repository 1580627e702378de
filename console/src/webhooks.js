// webhooks.js - the tenant's webhook endpoints: the list and creation (the
// signing secret shown once), and one endpoint: change it, enable or
// disable, rotate its secret, send a test, delete it, its deliveries (with
// retry) and a replay of a time range.
import { html, useState, useEffect, useLoad, usePoll, num, time, zone, ErrorBox, Loading, Empty, Status, Pager,
  Field, Secret, confirmAction, useSubmit, useFilters, options, isoOf, described } from './ui.js';
import { api } from './api.js';
import { EVENT_TYPES } from './events.js';

const SUBSCRIBABLE = EVENT_TYPES.filter((t) => t !== 'webhook.test');
const DELIVERY_STATUSES = ['pending', 'sending', 'succeeded', 'failed'];

const eventsText = (ev) => (ev.includes('*') ? 'all events' : ev.join(', '));
const state = (w) => (!w.enabled ? 'disabled' : w.failing_since ? 'failing' : 'enabled');

// Which events an endpoint gets: all (["*"], the default) or a chosen few.
function EventsPicker({ value, onChange }) {
  const all = value.includes('*');
  return html`<fieldset class="picker"><legend>Events to send</legend>
    <label class="check"><input type="checkbox" id="wh-all" checked=${all}
      onChange=${(e) => onChange(e.target.checked ? ['*'] : [])} /> All events, including types added later</label>
    ${!all && html`<div class="checks">${SUBSCRIBABLE.map((t) => html`<label class="check">
      <input type="checkbox" checked=${value.includes(t)}
        onChange=${(e) => onChange(e.target.checked ? value.concat([t]) : value.filter((x) => x !== t))} /> ${t}</label>`)}</div>`}
  </fieldset>`;
}

// The fields of an endpoint, for creating one and for changing it.
function WebhookForm({ initial, action, onSave }) {
  const [w, setW] = useState(initial);
  const f = useSubmit(() => onSave({ url: w.url.trim(), description: w.description.trim() || null, events: w.events, enabled: w.enabled }));
  const set = (k) => (e) => setW({ ...w, [k]: e.target.value });
  const fieldless = f.error && !['url', 'description'].includes(f.error.field);
  return html`<form onSubmit=${f.submit} novalidate>
    <${Field} id="url" label="URL" error=${f.error} hint="https://… on your side; it must answer 2xx within the timeout.">
      <input id="url" ...${described('url', f.error)} type="url" required value=${w.url} onInput=${set('url')} placeholder="https://hooks.example.com/mailcast" /><//>
    <${Field} id="description" label="Description (optional)" error=${f.error}>
      <input id="description" ...${described('description', f.error)} value=${w.description} onInput=${set('description')} placeholder="CRM sync" /><//>
    <${EventsPicker} value=${w.events} onChange=${(events) => setW({ ...w, events })} />
    <label class="check"><input type="checkbox" id="wh-enabled" checked=${w.enabled}
      onChange=${(e) => setW({ ...w, enabled: e.target.checked })} /> Enabled</label>
    ${fieldless && html`<${ErrorBox} error=${f.error} />`}
    <div class="row"><button class="primary" disabled=${f.busy}>${action}</button></div></form>`;
}

export function WebhookIndex({ ctx }) {
  const path = ctx.base + '/webhooks';
  const [offset, setOffset] = useState(0);
  const [created, setCreated] = useState(null);
  const [formKey, setFormKey] = useState(0);
  const r = useLoad(() => api('GET', path, { query: { limit: 50, offset } }), [offset]);
  const rows = r.data ? r.data.data : [];
  const create = async (body) => {
    setCreated(await api('POST', path, { body }));
    setFormKey(formKey + 1);
    r.reload();
  };
  return html`<h1 tabindex="-1">Webhooks</h1>
    <p class="muted">mailcast posts each event to your endpoints, signed (Standard Webhooks) with the
      endpoint's secret, and retries until they answer 2xx.</p>
    ${created && html`<${Secret} title=${`Copy the signing secret of ${created.url} now: it is shown only once.`}
      value=${created.secret} id="new-secret" copyLabel="Copy secret" onDone=${() => setCreated(null)} />
      <p><a href=${'#/webhooks/' + created.id}>Open the new endpoint</a></p>`}
    ${ctx.canWrite && html`<details class="card" open=${!r.loading && !rows.length}><summary>New endpoint</summary>
      <${WebhookForm} key=${formKey} initial=${{ url: '', description: '', events: ['*'], enabled: true }}
        action="Create endpoint" onSave=${create} /></details>`}
    <${ErrorBox} error=${r.error} />
    ${r.loading && html`<${Loading} what="webhooks" />`}
    ${r.data && !rows.length && html`<${Empty}>No endpoints: events are kept in the log only.<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table><caption class="sr-only">Webhook endpoints</caption>
      <thead><tr><th scope="col">URL</th><th scope="col">State</th><th scope="col" class="wide">Events</th>
        <th scope="col" class="wide">Last success</th></tr></thead>
      <tbody>${rows.map((w) => html`<tr key=${w.id}>
        <td class="url"><a href=${'#/webhooks/' + w.id}>${w.url}</a>${w.description && html`<br /><span class="muted">${w.description}</span>`}</td>
        <td><${Status} s=${state(w)} /></td><td class="wide">${eventsText(w.events)}</td>
        <td class="wide">${w.last_success_at ? time(w.last_success_at) : 'never'}</td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${r.data} onOffset=${setOffset} />`;
}

// onLoad: called after each load (the endpoint's own state follows its deliveries).
function Deliveries({ ctx, path, done, onLoad }) {
  const [offset, setOffset] = useState(0);
  const [err, setErr] = useState(null);
  const f = useFilters({ status: '' }, () => setOffset(0));
  const r = useLoad(() => api('GET', path + '/deliveries', { query: { ...f.applied, limit: 25, offset } }), [f.applied, offset, done]);
  const rows = r.data ? r.data.data : [];
  usePoll(r.reload, 2000, rows.some((d) => d.status === 'pending' || d.status === 'sending'));
  useEffect(() => { if (r.data) onLoad(); }, [r.data]);
  const retry = async (d) => {
    setErr(null);
    try { await api('POST', `${path}/deliveries/${d.id}/retry`); r.reload(); } catch (e) { setErr(e); }
  };
  return html`<section aria-labelledby="deliveries-h"><h2 id="deliveries-h">Deliveries</h2>
    <div class="row filters"><span class="f"><label for="df-status">Status</label>
      <select id="df-status" value=${f.draft.status} onChange=${f.set('status', true)}>${options(DELIVERY_STATUSES, 'any')}</select></span></div>
    <${ErrorBox} error=${r.error || err} />
    ${r.data && !rows.length && html`<${Empty}>${f.applied.status ? 'No delivery matches.' : 'Nothing sent to this endpoint yet.'}<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table class="stack"><caption class="sr-only">Deliveries, newest first</caption>
      <thead><tr><th scope="col">Created</th><th scope="col">Event</th><th scope="col">Status</th>
        <th scope="col">Last answer</th><th scope="col" class="n wide">Attempts</th><th scope="col" class="wide">Last or next attempt</th>
        ${ctx.canWrite && html`<th scope="col"><span class="sr-only">Actions</span></th>`}</tr></thead>
      <tbody>${rows.map((d) => html`<tr key=${d.id}><td>${time(d.created_at)}</td><td><code>${d.event_type}</code></td>
        <td><${Status} s=${d.status} /></td>
        <td>${d.last_status_code ? 'HTTP ' + d.last_status_code : ''}${d.last_error_class && d.last_error_class !== 'http_status' ? ' ' + d.last_error_class : ''}${d.last_latency_ms !== null ? ` (${num(d.last_latency_ms)} ms)` : ''}</td>
        <td class="n wide">${num(d.attempts)}</td>
        <td class="wide">${d.next_attempt_at && d.status === 'pending' ? 'next ' + time(d.next_attempt_at) : time(d.last_attempt_at)}</td>
        ${ctx.canWrite && html`<td>${['succeeded', 'failed'].includes(d.status) && html`<button type="button" class="small"
          onClick=${() => retry(d)} aria-label=${`Retry the ${d.event_type} delivery`}>Retry</button>`}</td>`}</tr>`)}</tbody></table></div>`}
    <${Pager} page=${r.data} onOffset=${setOffset} /></section>`;
}

function Replay({ path, done }) {
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [queued, setQueued] = useState(null);
  const f = useSubmit(async () => {
    setQueued(null);
    if (!isoOf(from)) throw new Error('Choose when the range starts.');
    const body = to ? { from: isoOf(from), to: isoOf(to) } : { from: isoOf(from) };
    setQueued((await api('POST', path + '/replay', { body })).queued);
    done();
  });
  return html`<section aria-labelledby="replay-h"><h2 id="replay-h">Replay</h2>
    <p class="muted">Sends again every event of a time range this endpoint subscribes to, with their original ids.</p>
    <form class="inline" onSubmit=${f.submit}>
      <label for="replay-from">From (${zone})</label>
      <input id="replay-from" type="datetime-local" value=${from} onInput=${(e) => setFrom(e.target.value)} />
      <label for="replay-to">To (empty: now)</label>
      <input id="replay-to" type="datetime-local" value=${to} onInput=${(e) => setTo(e.target.value)} />
      <button disabled=${f.busy}>Replay</button></form>
    <${ErrorBox} error=${f.error} />
    ${queued !== null && html`<p class="ok" role="status">${num(queued)} deliveries queued.</p>`}</section>`;
}

export function WebhookView({ id, ctx }) {
  const path = `${ctx.base}/webhooks/${id}`;
  const r = useLoad(() => api('GET', path), [id]);
  const [secret, setSecret] = useState(null);
  const [note, setNote] = useState('');
  const [err, setErr] = useState(null);
  const [tick, setTick] = useState(0); // reloads the deliveries after a test, retry or replay
  const w = r.data;
  const head = html`<p class="crumbs"><a href="#/webhooks">Webhooks</a></p>`;
  if (r.error) return html`${head}<h1 tabindex="-1">Webhook</h1><${ErrorBox} error=${r.error} />`;
  if (!w) return html`${head}<h1 tabindex="-1">Webhook</h1><${Loading} what="the endpoint" />`;
  const run = async (fn) => { setErr(null); setNote(''); try { await fn(); } catch (e) { setErr(e); } };
  const test = () => run(async () => {
    await api('POST', path + '/test');
    setNote('A webhook.test event is on its way; see the deliveries below.');
    setTick(tick + 1);
  });
  const rotate = () => run(async () => {
    if (!(await confirmAction('Make a new signing secret? The old one keeps signing for a grace period, so receivers can switch.', 'Rotate secret'))) return;
    setSecret(await api('POST', path + '/rotate-secret', { body: {} }));
    r.reload();
  });
  const del = () => run(async () => {
    if (!(await confirmAction('Delete this endpoint and its deliveries? The events stay in the log.', 'Delete endpoint', true))) return;
    await api('DELETE', path);
    location.hash = '#/webhooks';
  });
  const save = async (body) => { await api('PATCH', path, { body }); setNote('Saved.'); r.reload(); };
  return html`${head}
    <h1 tabindex="-1"><span class="url">${w.url}</span> <${Status} s=${state(w)} /></h1>
    <dl class="details">
      ${w.description && html`<dt>Description</dt><dd>${w.description}</dd>`}
      <dt>Events</dt><dd>${eventsText(w.events)}</dd>
      ${w.disabled_reason && html`<dt>Disabled because</dt><dd>${w.disabled_reason}</dd>`}
      ${w.failing_since && html`<dt>Failing since</dt><dd>${time(w.failing_since)}</dd>`}
      <dt>Last success</dt><dd>${w.last_success_at ? time(w.last_success_at) : 'never'}</dd>
      ${w.previous_secret_expires_at && html`<dt>Old secret signs until</dt><dd>${time(w.previous_secret_expires_at)}</dd>`}
      <dt>Created</dt><dd>${time(w.created_at)}</dd>
    </dl>
    ${ctx.canWrite && html`<div class="row actions">
      <button type="button" class="primary" onClick=${test} disabled=${!w.enabled}>Send test</button>
      <button type="button" onClick=${rotate}>Rotate secret</button>
      <button type="button" class="danger" onClick=${del}>Delete endpoint</button></div>`}
    ${note && html`<p class="notice" role="status">${note}</p>`}
    <${ErrorBox} error=${err} />
    ${secret && html`<${Secret} title="Copy the new signing secret now: it is shown only once."
      value=${secret.secret} id="new-secret" copyLabel="Copy secret" onDone=${() => setSecret(null)} />`}
    ${ctx.canWrite && html`<details class="card"><summary>Change the endpoint</summary>
      <${WebhookForm} key=${w.updated_at} initial=${{ url: w.url, description: w.description || '', events: w.events, enabled: w.enabled }}
        action="Save changes" onSave=${save} /></details>`}
    <${Deliveries} ctx=${ctx} path=${path} done=${tick} onLoad=${r.reload} />
    ${ctx.canWrite && html`<${Replay} path=${path} done=${() => setTick(tick + 1)} />`}`;
}
