// operator.js - the operator's pages: tenants (create, suspend,
// reactivate), a tenant's keys (create: the secret shown once; revoke) and
// rate limits (edit), and a system view from the server's metrics.
import { html, useState, useRef, useEffect, useLoad, usePoll, num, time, ErrorBox, Loading, Empty, Status,
  Pager, Secret, confirmAction, Field, useSubmit } from './ui.js';
import { api, metrics } from './api.js';

export function TenantIndex() {
  const [offset, setOffset] = useState(0);
  const [name, setName] = useState('');
  const r = useLoad(() => api('GET', '/api/v1/tenants', { query: { limit: 50, offset } }), [offset]);
  const add = useSubmit(async () => {
    const t = await api('POST', '/api/v1/tenants', { body: { name } });
    location.hash = '#/tenants/' + t.id;
  });
  const rows = r.data ? r.data.data : [];
  return html`<h1 tabindex="-1">Tenants</h1>
    <form class="inline card" onSubmit=${add.submit}>
      <label for="tenant-name">New tenant</label>
      <input id="tenant-name" required value=${name} onInput=${(e) => setName(e.target.value)} placeholder="Display name" />
      <button class="primary" disabled=${add.busy}>Create tenant</button></form>
    <${ErrorBox} error=${add.error || r.error} />
    ${r.loading && html`<${Loading} what="tenants" />`}
    ${r.data && !rows.length && html`<${Empty}>No tenants yet: create the first one above.<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table><caption class="sr-only">Tenants</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Slug</th><th scope="col">Status</th><th scope="col">Plan</th><th scope="col">Created</th></tr></thead>
      <tbody>${rows.map((t) => html`<tr key=${t.id}><td><a href=${'#/tenants/' + t.id}>${t.name}</a></td><td>${t.slug}</td>
        <td><${Status} s=${t.status} /></td><td>${t.plan}</td><td>${time(t.created_at)}</td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${r.data} onOffset=${setOffset} />`;
}

function NewKey({ path, done }) {
  const [name, setName] = useState('');
  const [write, setWrite] = useState(true);
  const [secret, setSecret] = useState(null);
  const f = useSubmit(async () => {
    const k = await api('POST', path, { body: { name: name || 'default', scopes: write ? ['read', 'write'] : ['read'] } });
    setSecret(k);
    setName('');
    done();
  });
  return html`<form class="inline" onSubmit=${f.submit}>
      <label for="key-name">Key name</label><input id="key-name" value=${name} onInput=${(e) => setName(e.target.value)} placeholder="default" />
      <label class="check"><input type="checkbox" id="key-write" checked=${write} onChange=${(e) => setWrite(e.target.checked)} /> may write</label>
      <button class="primary" disabled=${f.busy}>Create key</button></form>
    <${ErrorBox} error=${f.error} />
    ${secret && html`<${Secret} title=${`Copy the key for ${secret.name} now: it is shown only once.`}
      value=${secret.key} id="new-secret" copyLabel="Copy key" onDone=${() => setSecret(null)} />`}`;
}

function LimitsForm({ path }) {
  const r = useLoad(() => api('GET', path), [path]);
  const [form, setForm] = useState(null);
  const [saved, setSaved] = useState(false);
  const cur = form || (r.data && { per_minute: String(r.data.per_minute), per_hour: String(r.data.per_hour),
    per_day: String(r.data.per_day), enabled: r.data.enabled });
  const f = useSubmit(async () => {
    setSaved(false);
    await api('PUT', path, { body: { per_minute: Number(cur.per_minute), per_hour: Number(cur.per_hour),
      per_day: Number(cur.per_day), enabled: cur.enabled } });
    setForm(null);
    await r.reload();
    setSaved(true);
  });
  if (r.error) return html`<${ErrorBox} error=${r.error} />`;
  if (!cur) return html`<${Loading} what="rate limits" />`;
  const set = (k) => (e) => setForm({ ...cur, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });
  const inp = (k, label) => html`<${Field} id=${'rl-' + k} label=${label} error=${f.error && f.error.field === k ? { ...f.error, field: 'rl-' + k } : null}>
    <input id=${'rl-' + k} type="number" min="1" required value=${cur[k]} onInput=${set(k)} /><//>`;
  return html`<form class="card limits" onSubmit=${f.submit}>
    <div class="grid3">${inp('per_minute', 'Per minute')}${inp('per_hour', 'Per hour')}${inp('per_day', 'Per day')}</div>
    <label class="check"><input type="checkbox" checked=${cur.enabled} onChange=${set('enabled')} /> Enforce these limits</label>
    ${f.error && !['per_minute', 'per_hour', 'per_day'].includes(f.error.field) && html`<${ErrorBox} error=${f.error} />`}
    <div class="row"><button class="primary" disabled=${f.busy}>Save limits</button>
      ${saved && html`<span role="status" class="ok">Saved.</span>`}</div></form>`;
}

export function TenantView({ id }) {
  const path = '/api/v1/tenants/' + id;
  const t = useLoad(() => api('GET', path), [id]);
  const keys = useLoad(() => api('GET', path + '/api-keys', { query: { limit: 100 } }), [id]);
  const [err, setErr] = useState(null);
  const setStatus = async (status) => {
    const q = status === 'suspended'
      ? 'Suspend this tenant? Its keys stop working and its campaigns stop sending until it is reactivated.'
      : 'Reactivate this tenant?';
    if (!(await confirmAction(q, status === 'suspended' ? 'Suspend' : 'Reactivate', status === 'suspended'))) return;
    try { await api('PATCH', path, { body: { status } }); t.reload(); } catch (e) { setErr(e); }
  };
  const revoke = async (k) => {
    if (!(await confirmAction(`Revoke the key ${k.name} (${k.prefix}…)? Whoever uses it is locked out at once.`, 'Revoke', true))) return;
    try { await api('DELETE', `${path}/api-keys/${k.id}`); keys.reload(); } catch (e) { setErr(e); }
  };
  if (t.error) return html`<h1 tabindex="-1">Tenant</h1><${ErrorBox} error=${t.error} />`;
  if (!t.data) return html`<h1 tabindex="-1">Tenant</h1><${Loading} what="the tenant" />`;
  const ten = t.data;
  const ks = keys.data ? keys.data.data : [];
  return html`<p class="crumbs"><a href="#/tenants">Tenants</a></p>
    <h1 tabindex="-1">${ten.name} <${Status} s=${ten.status} /></h1>
    <p class="muted">slug ${ten.slug} · plan ${ten.plan} · id <code>${ten.id}</code> · created ${time(ten.created_at)}</p>
    <div class="row">${ten.status === 'active'
      ? html`<button type="button" class="danger" onClick=${() => setStatus('suspended')}>Suspend tenant</button>`
      : html`<button type="button" class="primary" onClick=${() => setStatus('active')}>Reactivate tenant</button>`}</div>
    <${ErrorBox} error=${err} />
    <h2>API keys</h2>
    <${NewKey} path=${path + '/api-keys'} done=${keys.reload} />
    <${ErrorBox} error=${keys.error} />
    ${keys.loading && html`<${Loading} what="keys" />`}
    ${keys.data && !ks.length && html`<${Empty}>No keys: create one for the tenant.<//>`}
    ${ks.length > 0 && html`<div class="table-wrap"><table><caption class="sr-only">API keys</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Scopes</th><th scope="col">Status</th><th scope="col">Last used</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${ks.map((k) => html`<tr key=${k.id}><td>${k.name}</td><td><code>${k.prefix}</code></td><td>${k.scopes.join(', ')}</td>
        <td><${Status} s=${k.status} /></td><td>${time(k.last_used_at)}</td>
        <td>${k.status === 'active' && html`<button type="button" class="small danger" onClick=${() => revoke(k)} aria-label=${'Revoke ' + k.name}>Revoke</button>`}</td></tr>`)}</tbody></table></div>`}
    <h2>Rate limits</h2>
    <${LimitsForm} path=${path + '/rate-limits'} />`;
}

const sum = (xs) => xs.reduce((a, x) => a + x.value, 0);

export function SystemView() {
  const r = useLoad(() => Promise.all([metrics(), api('GET', '/api/v1/tenants', { query: { limit: 1000 } })]), []);
  const last = useRef(null);
  const [rate, setRate] = useState(null);
  usePoll(async () => { await r.reload(); }, 2000, true);
  const m = r.data && r.data[0];
  useEffect(() => {
    // The rate: sent outcomes between two samples at least 1.5 s apart.
    if (!m) return;
    const sent = sum((m.mailcast_messages_total || []).filter((x) => x.labels.outcome === 'sent'));
    const now = Date.now();
    if (!last.current) last.current = { t: now, sent };
    else if (now - last.current.t >= 1500) {
      setRate(((sent - last.current.sent) * 60000) / (now - last.current.t));
      last.current = { t: now, sent };
    }
  }, [m]);
  const names = {};
  if (r.data) for (const t of r.data[1].data) names[t.id] = t.name;
  const q = (state) => sum(((m && m.mailcast_queue_messages) || []).filter((x) => x.labels.state === state));
  const byTenant = {};
  const outcomes = new Set();
  for (const x of (m && m.mailcast_messages_total) || []) {
    outcomes.add(x.labels.outcome);
    (byTenant[x.labels.tenant] = byTenant[x.labels.tenant] || {})[x.labels.outcome] = x.value;
  }
  const cols = [...outcomes].sort();
  return html`<h1 tabindex="-1">System</h1>
    <p class="muted">From this server's /metrics, refreshed every 2 s. Outcomes count since this process started.</p>
    <${ErrorBox} error=${r.error} />
    ${!m && !r.error && html`<${Loading} what="metrics" />`}
    ${m && html`<dl class="counts">
      <div><dt>Queued (pending)</dt><dd>${num(q('pending'))}</dd></div>
      <div><dt>Being sent</dt><dd>${num(q('sending'))}</dd></div>
      <div><dt>Sending rate</dt><dd>${rate === null ? 'measuring…' : num(Math.round(rate)) + ' / min'}</dd></div>
    </dl>
    <h2>Outcomes by tenant</h2>
    ${!Object.keys(byTenant).length ? html`<${Empty}>No message sent since the server started.<//>` : html`<div class="table-wrap"><table>
      <caption class="sr-only">Delivery outcomes by tenant</caption>
      <thead><tr><th scope="col">Tenant</th>${cols.map((c) => html`<th scope="col" class="n">${c}</th>`)}</tr></thead>
      <tbody>${Object.entries(byTenant).map(([tid, o]) => html`<tr><td>${names[tid] ? html`<a href=${'#/tenants/' + tid}>${names[tid]}</a>` : tid}</td>
        ${cols.map((c) => html`<td class="n">${num(o[c] || 0)}</td>`)}</tr>`)}</tbody></table></div>`}`}`;
}

