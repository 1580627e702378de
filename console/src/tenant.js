// tenant.js - a tenant's lists and recipients (search, filter, paging,
// CSV import with progress and report, export), suppression list, DKIM
// keys and rate limits.  Write controls only for keys with write.
import { html, useState, useEffect, useLoad, num, time, ErrorBox, Loading, Empty, Progress,
  Status, Pager, Copy, confirmAction, useSubmit } from './ui.js';
import { api, upload, download } from './api.js';

const PAGE = 50;

function NameForm({ label, id, initial, action, onDone }) {
  const [name, setName] = useState(initial || '');
  const f = useSubmit(async () => { await onDone(name); if (!initial) setName(''); });
  return html`<form class="inline" onSubmit=${f.submit}>
    <label for=${id}>${label}</label>
    <input id=${id} value=${name} required onInput=${(e) => setName(e.target.value)} />
    <button disabled=${f.busy}>${action}</button><${ErrorBox} error=${f.error} /></form>`;
}

export function ListIndex({ ctx }) {
  const [offset, setOffset] = useState(0);
  const r = useLoad(() => api('GET', ctx.base + '/recipient-lists', { query: { limit: PAGE, offset } }), [offset]);
  const rows = r.data ? r.data.data : [];
  const create = async (name) => {
    const l = await api('POST', ctx.base + '/recipient-lists', { body: { name } });
    location.hash = '#/lists/' + l.id;
  };
  return html`<h1 tabindex="-1">Lists</h1>
    ${ctx.canWrite && html`<${NameForm} id="new-list" label="New list" action="Create list" onDone=${create} />`}
    <${ErrorBox} error=${r.error} />
    ${r.loading && html`<${Loading} what="lists" />`}
    ${r.data && !rows.length && html`<${Empty}>No lists yet.${ctx.canWrite ? ' Create one, then import a CSV into it.' : ''}<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table><caption class="sr-only">Recipient lists</caption>
      <thead><tr><th scope="col">Name</th><th scope="col" class="n">Recipients</th><th scope="col" class="n">Active</th><th scope="col">Created</th></tr></thead>
      <tbody>${rows.map((l) => html`<tr key=${l.id}><td><a href=${'#/lists/' + l.id}>${l.name}</a></td>
        <td class="n">${num(l.recipient_count)}</td><td class="n">${num(l.active_count)}</td><td>${time(l.created_at)}</td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${r.data} onOffset=${setOffset} />`;
}

// The import report: counts, then the invalid rows with their line numbers.
function Report({ rep }) {
  if (!rep) return null;
  const counts = [['Rows read', rep.total], ['Imported', rep.imported], ['Updated', rep.updated],
    ['Duplicates skipped', rep.skipped_duplicates], ['Suppressed skipped', rep.skipped_suppressed],
    ['Invalid', rep.invalid]].filter(([, v]) => v !== undefined);
  return html`<div class="report" role="status" aria-labelledby="report-h"><h3 id="report-h">Import report</h3>
    ${rep.error && html`<p class="error">${rep.error.message}</p>`}
    <dl class="counts">${counts.map(([k, v]) => html`<div><dt>${k}</dt><dd>${num(v)}</dd></div>`)}</dl>
    ${rep.errors && rep.errors.length > 0 && html`<div class="table-wrap"><table><caption>Invalid rows${rep.invalid > rep.errors.length ? ` (the first ${rep.errors.length})` : ''}</caption>
      <thead><tr><th scope="col" class="n">Line</th><th scope="col">Address</th><th scope="col">Reason</th></tr></thead>
      <tbody>${rep.errors.map((e) => html`<tr><td class="n">${num(e.line)}</td><td>${e.email || '(none)'}</td><td>${e.reason}</td></tr>`)}</tbody></table></div>`}
  </div>`;
}

function Import({ path, label, modes, done }) {
  const [file, setFile] = useState(null);
  const [mode, setMode] = useState(modes ? modes[0] : '');
  const [progress, setProgress] = useState(null);
  const [rep, setRep] = useState(null);
  const f = useSubmit(async () => {
    if (!file) throw new Error('Choose a CSV file first.');
    setRep(null);
    setProgress(0);
    try {
      setRep(await upload(path, file, 'text/csv', { mode }, setProgress));
    } catch (e) {
      if (e.body && e.body.total !== undefined) setRep(e.body);
      throw e;
    } finally {
      done();
    }
  });
  return html`<form class="inline" onSubmit=${f.submit}>
    <label for="import-file">${label}</label>
    <input id="import-file" type="file" accept=".csv,text/csv" onChange=${(e) => setFile(e.target.files[0] || null)} />
    ${modes && html`<label for="import-mode">Existing addresses</label>
      <select id="import-mode" value=${mode} onChange=${(e) => setMode(e.target.value)}>
        ${modes.map((m) => html`<option value=${m}>${m === 'skip' ? 'skip them' : 'update them'}</option>`)}</select>`}
    <button disabled=${f.busy}>Import</button></form>
    ${progress !== null && html`<${Progress} value=${progress * 100} label="Upload progress" />`}
    <${ErrorBox} error=${f.error} /><${Report} rep=${rep} />`;
}

function AddRecipient({ path, done }) {
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const f = useSubmit(async () => {
    await api('POST', path, { body: name ? { email, name } : { email } });
    setEmail(''); setName(''); done();
  });
  return html`<form class="inline" onSubmit=${f.submit}>
    <label for="add-email">Email</label><input id="add-email" type="email" required value=${email} onInput=${(e) => setEmail(e.target.value)} />
    <label for="add-name">Name</label><input id="add-name" value=${name} onInput=${(e) => setName(e.target.value)} />
    <button disabled=${f.busy}>Add recipient</button><${ErrorBox} error=${f.error} /></form>`;
}

export function ListView({ id, ctx }) {
  const path = `${ctx.base}/recipient-lists/${id}`;
  const [q, setQ] = useState('');
  const [query, setQuery] = useState('');
  const [status, setStatus] = useState('');
  const [offset, setOffset] = useState(0);
  const [err, setErr] = useState(null);
  const list = useLoad(() => api('GET', path), [id]);
  const rs = useLoad(() => api('GET', path + '/recipients', { query: { q: query, status, limit: PAGE, offset } }), [id, query, status, offset]);
  useEffect(() => { const t = setTimeout(() => { setQuery(q); setOffset(0); }, 300); return () => clearTimeout(t); }, [q]);
  const refresh = () => { list.reload(); rs.reload(); };
  const rename = async (name) => { await api('PUT', path, { body: { name } }); list.reload(); };
  const del = async () => {
    if (!(await confirmAction('Delete this list and all its recipients?', 'Delete list', true))) return;
    try { await api('DELETE', path); location.hash = '#/lists'; } catch (e) { setErr(e); }
  };
  const remove = async (x) => {
    if (!(await confirmAction(`Remove ${x.email} from this list?`, 'Remove', true))) return;
    try { await api('DELETE', `${path}/recipients/${x.id}`); refresh(); } catch (e) { setErr(e); }
  };
  const exp = async () => {
    setErr(null);
    try { await download(path + '/recipients/export', `${l.name.replace(/[^A-Za-z0-9._-]+/g, '_') || 'list'}.csv`); } catch (e) { setErr(e); }
  };
  if (list.error) return html`<h1 tabindex="-1">List</h1><${ErrorBox} error=${list.error} />`;
  const l = list.data;
  if (!l) return html`<h1 tabindex="-1">List</h1><${Loading} what="the list" />`;
  const rows = rs.data ? rs.data.data : [];
  return html`<p class="crumbs"><a href="#/lists">Lists</a></p>
    <h1 tabindex="-1">${l.name}</h1>
    <p class="muted">${num(l.recipient_count)} recipients, ${num(l.active_count)} active · created ${time(l.created_at)}</p>
    <div class="row">
      <button type="button" onClick=${exp}>Export CSV</button>
      ${ctx.canWrite && html`<button type="button" class="danger" onClick=${del}>Delete list</button>`}
    </div>
    <${ErrorBox} error=${err} />
    ${ctx.canWrite && html`<details class="card"><summary>Rename, add, import</summary>
      <${NameForm} id="rename" label="Name" initial=${l.name} action="Rename" onDone=${rename} />
      <${AddRecipient} path=${path + '/recipients'} done=${refresh} />
      <${Import} path=${path + '/recipients/import'} label="Import a CSV (header: email, name, …)" modes=${['skip', 'upsert']} done=${refresh} />
    </details>`}
    <h2>Recipients</h2>
    <div class="row filters">
      <label for="rq">Search</label><input id="rq" type="search" value=${q} onInput=${(e) => setQ(e.target.value)} placeholder="address or name" />
      <label for="rstatus">Status</label>
      <select id="rstatus" value=${status} onChange=${(e) => { setStatus(e.target.value); setOffset(0); }}>
        ${['', 'active', 'unsubscribed', 'bounced', 'complained'].map((s) => html`<option value=${s}>${s || 'any'}</option>`)}
      </select>
    </div>
    <${ErrorBox} error=${rs.error} />
    ${rs.loading && html`<${Loading} what="recipients" />`}
    ${rs.data && !rows.length && html`<${Empty}>${query || status ? 'No recipient matches.' : 'No recipients yet: import a CSV or add one.'}<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table><caption class="sr-only">Recipients</caption>
      <thead><tr><th scope="col">Email</th><th scope="col">Name</th><th scope="col">Status</th><th scope="col" class="wide">Subscribed</th>${ctx.canWrite && html`<th scope="col"><span class="sr-only">Actions</span></th>`}</tr></thead>
      <tbody>${rows.map((x) => html`<tr key=${x.id}><td>${x.email}</td><td>${x.name || ''}</td><td><${Status} s=${x.status} /></td><td class="wide">${time(x.subscribed_at)}</td>
        ${ctx.canWrite && html`<td><button type="button" class="small" onClick=${() => remove(x)} aria-label=${'Remove ' + x.email}>Remove</button></td>`}</tr>`)}</tbody></table></div>`}
    <${Pager} page=${rs.data} onOffset=${setOffset} />`;
}

export function Suppressions({ ctx }) {
  const path = ctx.base + '/unsubscribes';
  const [q, setQ] = useState('');
  const [query, setQuery] = useState('');
  const [source, setSource] = useState('');
  const [offset, setOffset] = useState(0);
  const [email, setEmail] = useState('');
  const [reason, setReason] = useState('');
  const [err, setErr] = useState(null);
  const r = useLoad(() => api('GET', path, { query: { q: query, source, limit: PAGE, offset } }), [query, source, offset]);
  useEffect(() => { const t = setTimeout(() => { setQuery(q); setOffset(0); }, 300); return () => clearTimeout(t); }, [q]);
  const add = useSubmit(async () => {
    await api('POST', path, { body: reason ? { email, reason } : { email } });
    setEmail(''); setReason(''); r.reload();
  });
  const remove = async (u) => {
    if (!(await confirmAction(`Remove ${u.email} from the suppression list? Mail to it will be sent again.`, 'Remove', true))) return;
    try { await api('DELETE', `${path}/${encodeURIComponent(u.email)}`); r.reload(); } catch (e) { setErr(e); }
  };
  const rows = r.data ? r.data.data : [];
  return html`<h1 tabindex="-1">Suppression list</h1>
    <p class="muted">Addresses here are never sent to, whichever list they are in.</p>
    ${ctx.canWrite && html`<details class="card"><summary>Add or import</summary>
      <form class="inline" onSubmit=${add.submit}>
        <label for="sup-email">Email</label><input id="sup-email" type="email" required value=${email} onInput=${(e) => setEmail(e.target.value)} />
        <label for="sup-reason">Reason</label><input id="sup-reason" value=${reason} onInput=${(e) => setReason(e.target.value)} />
        <button disabled=${add.busy}>Add</button></form><${ErrorBox} error=${add.error} />
      <${Import} path=${path + '/import'} label="Import a CSV (header: email, reason)" done=${r.reload} />
    </details>`}
    <div class="row filters">
      <label for="sq">Search</label><input id="sq" type="search" value=${q} onInput=${(e) => setQ(e.target.value)} />
      <label for="ssource">Source</label>
      <select id="ssource" value=${source} onChange=${(e) => { setSource(e.target.value); setOffset(0); }}>
        ${['', 'manual', 'import', 'link', 'bounce', 'complaint'].map((s) => html`<option value=${s}>${s || 'any'}</option>`)}</select>
    </div>
    <${ErrorBox} error=${r.error || err} />
    ${r.loading && html`<${Loading} what="the suppression list" />`}
    ${r.data && !rows.length && html`<${Empty}>${query || source ? 'No suppressed address matches.' : 'The suppression list is empty.'}<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table><caption class="sr-only">Suppressed addresses</caption>
      <thead><tr><th scope="col">Email</th><th scope="col">Source</th><th scope="col">Reason</th><th scope="col">Since</th>${ctx.canWrite && html`<th scope="col"><span class="sr-only">Actions</span></th>`}</tr></thead>
      <tbody>${rows.map((u) => html`<tr key=${u.id}><td>${u.email}</td><td>${u.source}</td><td>${u.reason || ''}</td><td>${time(u.unsubscribed_at)}</td>
        ${ctx.canWrite && html`<td><button type="button" class="small" onClick=${() => remove(u)} aria-label=${'Remove ' + u.email}>Remove</button></td>`}</tr>`)}</tbody></table></div>`}
    <${Pager} page=${r.data} onOffset=${setOffset} />`;
}

export function DkimKeys({ ctx }) {
  const path = ctx.base + '/dkim-keys';
  const r = useLoad(() => api('GET', path, { query: { limit: 100 } }), []);
  const [domain, setDomain] = useState('');
  const [selector, setSelector] = useState('mailcast');
  const [err, setErr] = useState(null);
  const add = useSubmit(async () => { await api('POST', path, { body: { domain, selector } }); setDomain(''); r.reload(); });
  const del = async (k) => {
    if (!(await confirmAction(`Delete the key ${k.selector} for ${k.domain}? Mail from it will no longer be signed.`, 'Delete', true))) return;
    try { await api('DELETE', `${path}/${k.id}`); r.reload(); } catch (e) { setErr(e); }
  };
  const rows = r.data ? r.data.data : [];
  return html`<h1 tabindex="-1">DKIM keys</h1>
    ${ctx.canWrite && html`<form class="inline card" onSubmit=${add.submit}>
      <label for="dk-domain">Domain</label><input id="dk-domain" required value=${domain} onInput=${(e) => setDomain(e.target.value)} placeholder="example.com" />
      <label for="dk-selector">Selector</label><input id="dk-selector" required value=${selector} onInput=${(e) => setSelector(e.target.value)} />
      <button disabled=${add.busy}>Create key</button></form><${ErrorBox} error=${add.error} />`}
    <${ErrorBox} error=${r.error || err} />
    ${r.loading && html`<${Loading} what="DKIM keys" />`}
    ${r.data && !rows.length && html`<${Empty}>No DKIM keys: mail goes out unsigned.${ctx.canWrite ? ' Create a key for your From domain, then publish its DNS record.' : ''}<//>`}
    ${rows.map((k) => html`<article class="card" key=${k.id}>
      <h2>${k.domain} <span class="muted">selector ${k.selector}</span></h2>
      <p class="muted">${k.algorithm} ${num(k.key_bits)} bits · created ${time(k.created_at)}</p>
      <p>Publish this DNS record:</p>
      <dl class="details"><dt>Name</dt><dd><code>${k.dns_name}</code> <${Copy} text=${k.dns_name} label="Copy name" /></dd>
        <dt>Type</dt><dd><code>${k.dns_type}</code></dd>
        <dt>Value</dt><dd><code class="wrap">${k.dns_record}</code> <${Copy} text=${k.dns_record} label="Copy value" /></dd></dl>
      ${ctx.canWrite && html`<button type="button" class="danger small" onClick=${() => del(k)}>Delete key</button>`}
    </article>`)}`;
}

export function RateLimitsView({ ctx }) {
  const r = useLoad(() => api('GET', ctx.base + '/rate-limits'), []);
  return html`<h1 tabindex="-1">Rate limits</h1>
    <p class="muted">Set by the operator. Campaigns may set lower limits of their own.</p>
    <${ErrorBox} error=${r.error} />
    ${r.loading && html`<${Loading} what="rate limits" />`}
    ${r.data && html`<${Limits} rl=${r.data} />`}`;
}

function Limits({ rl }) {
  return html`<dl class="counts">
    <div><dt>Per minute</dt><dd>${num(rl.per_minute)}</dd></div>
    <div><dt>Per hour</dt><dd>${num(rl.per_hour)}</dd></div>
    <div><dt>Per day</dt><dd>${num(rl.per_day)}</dd></div>
    <div><dt>Enforced</dt><dd>${rl.enabled ? 'yes' : 'no'}</dd></div></dl>`;
}

