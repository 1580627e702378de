// bounces.js - the tenant's bounce and complaint records (filters and
// paging; one record with its raw report, shown as text, never as HTML) and
// the bounce policy (read by all, changed with the write scope).
import { html, useState, useEffect, useLoad, time, zone, ErrorBox, Loading, Empty, Status, Pager,
  Field, useSubmit, useFilters, options, isoOf, described } from './ui.js';
import { api } from './api.js';
import { useCampaignNames, CampaignLink } from './campaigns.js';

const PAGE = 50;
const CLASSES = ['hard', 'soft', 'block', 'complaint', 'auto_reply', 'undetermined'];
const CLASS_TEXT = {
  hard: 'hard (no such address)', soft: 'soft (may work later)', block: 'block (refused the sender)',
  complaint: 'complaint', auto_reply: 'auto-reply', undetermined: 'undetermined',
};
const KIND_TEXT = {
  dsn: 'a delivery status notification', arf: 'a feedback report', auto_reply: 'an auto-reply',
  other: 'other mail', not_bounce: 'not a bounce', api: 'a report through the API',
};
const SOURCE_TEXT = { smtp: 'the bounce listener', pipe: '`mailcast bounce`', api: 'the API' };
const OUTCOME_TEXT = {
  suppressed: 'address suppressed', counted: 'counted toward the soft-bounce limit', recorded: 'recorded only',
  stranger: 'ignored: named someone else', duplicate: 'ignored: a duplicate', unreferenced: 'not matched',
};

export function Bounces({ ctx, query }) {
  const [offset, setOffset] = useState(0);
  const f = useFilters({ class: query.class || '', campaign_id: query.campaign_id || '', email: query.email || '', since: '' },
    () => setOffset(0));
  const camps = useCampaignNames(ctx);
  const a = f.applied;
  const r = useLoad(() => api('GET', ctx.base + '/bounces',
    { query: { ...a, since: isoOf(a.since), limit: PAGE, offset } }), [a, offset]);
  const rows = r.data ? r.data.data : [];
  const filtered = a.class || a.campaign_id || a.email || a.since;
  return html`<h1 tabindex="-1">Bounces</h1>
    <p class="muted">Reports that came back about your messages: bounces, complaints and auto-replies.
      Hard bounces and complaints suppress the address at once; soft bounces after the <a href="#/bounce-policy">bounce policy</a>'s limit.</p>
    <form class="row filters" onSubmit=${(e) => { e.preventDefault(); f.apply(); }}>
      <span class="f"><label for="bf-class">Class</label>
        <select id="bf-class" value=${f.draft.class} onChange=${f.set('class', true)}>${options(CLASSES, 'any', CLASS_TEXT)}</select></span>
      <span class="f"><label for="bf-campaign">Campaign</label>
        <select id="bf-campaign" value=${f.draft.campaign_id} onChange=${f.set('campaign_id', true)}>
          ${options(camps.ids, 'any', camps.names)}</select></span>
      <span class="f"><label for="bf-email">Address</label>
        <input id="bf-email" type="email" value=${f.draft.email} onInput=${f.set('email')} placeholder="jane@example.com" /></span>
      <span class="f"><label for="bf-since">Since (${zone})</label>
        <input id="bf-since" type="datetime-local" value=${f.draft.since} onInput=${f.set('since')} /></span>
      <button>Apply</button>
    </form>
    <${ErrorBox} error=${r.error} />
    ${r.loading && html`<${Loading} what="bounces" />`}
    ${r.data && !rows.length && html`<${Empty}>${filtered ? 'No bounce matches these filters.' : 'No bounces or complaints so far.'}<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table class="stack"><caption class="sr-only">Bounces, newest first</caption>
      <thead><tr><th scope="col">Received</th><th scope="col">Address</th><th scope="col">Class</th>
        <th scope="col" class="wide">Outcome</th><th scope="col" class="wide">Campaign</th><th scope="col" class="wide">Diagnostic</th></tr></thead>
      <tbody>${rows.map((b) => html`<tr key=${b.id}>
        <td>${time(b.received_at)}</td>
        <td><a href=${'#/bounces/' + b.id} aria-label=${`Details of the ${b.class} bounce of ${b.email || 'an unknown address'}`}>${b.email || '(unknown)'}</a></td>
        <td><${Status} s=${b.class} /></td>
        <td class="wide">${OUTCOME_TEXT[b.outcome] || b.outcome}</td>
        <td class="wide"><${CampaignLink} id=${b.campaign_id} names=${camps.names} /></td>
        <td class="wide clip">${b.status ? b.status + ' ' : ''}${b.diagnostic || ''}</td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${r.data} onOffset=${setOffset} />`;
}

export function BounceView({ id, ctx }) {
  const r = useLoad(() => api('GET', `${ctx.base}/bounces/${id}`), [id]);
  const camps = useCampaignNames(ctx);
  const b = r.data;
  if (r.error) return html`<p class="crumbs"><a href="#/bounces">Bounces</a></p><h1 tabindex="-1">Bounce</h1><${ErrorBox} error=${r.error} />`;
  if (!b) return html`<h1 tabindex="-1">Bounce</h1><${Loading} what="the bounce" />`;
  const rows = [['Class', html`<${Status} s=${b.class} /> ${CLASS_TEXT[b.class] || ''}`],
    ['Outcome', OUTCOME_TEXT[b.outcome] || b.outcome], ['Received', time(b.received_at)],
    ['Campaign', html`<${CampaignLink} id=${b.campaign_id} names=${camps.names} />`],
    ['Status code', b.status], ['Action', b.action], ['Diagnostic', b.diagnostic],
    ['Reporting server', b.reporting_mta], ['Remote server', b.remote_mta], ['Feedback type', b.feedback_type],
    ['Report', `${KIND_TEXT[b.kind] || b.kind}, taken in by ${SOURCE_TEXT[b.source] || b.source}`]];
  return html`<p class="crumbs"><a href="#/bounces">Bounces</a></p>
    <h1 tabindex="-1">${b.email || 'Unknown address'} <${Status} s=${b.class} /></h1>
    <dl class="details">${rows.filter(([, v]) => v).map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
    ${b.email && html`<p><a href=${'#/events?email=' + encodeURIComponent(b.email)}>Events of this address</a></p>`}
    <h2>Report as received</h2>
    ${b.raw ? html`<pre class="raw" tabindex="0" aria-label="The report as received">${b.raw}</pre>`
      : html`<p class="muted">None: this report came through the API, not as mail.</p>`}
    ${b.raw_truncated && html`<p class="muted">Cut short: the server keeps only the start of long reports.</p>`}`;
}

const POLICY = [
  // [field, label, min, max, hint]
  ['soft_limit', 'Soft bounces before suppressing', 1, 100, 'On different messages, with no delivery in between.'],
  ['soft_window_days', 'Counted within (days)', 1, 365, ''],
  ['soft_suppress_days', 'Suppressed for (days)', 1, 3650, 'Then the address is tried again.'],
];

export function BouncePolicy({ ctx }) {
  const path = ctx.base + '/bounce-policy';
  const r = useLoad(() => api('GET', path), []);
  const [form, setForm] = useState(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (r.data) setForm({ ...Object.fromEntries(POLICY.map(([k]) => [k, String(r.data[k])])), bounce_domain: r.data.bounce_domain || '' });
  }, [r.data]);
  const f = useSubmit(async () => {
    setSaved(false);
    const body = { bounce_domain: form.bounce_domain.trim() || null };
    for (const [k] of POLICY) body[k] = Number(form[k]);
    await api('PUT', path, { body });
    setSaved(true);
    r.reload();
  });
  const p = r.data;
  const head = html`<p class="crumbs"><a href="#/bounces">Bounces</a></p><h1 tabindex="-1">Bounce policy</h1>`;
  if (r.error) return html`${head}<${ErrorBox} error=${r.error} />`;
  if (!p || !form) return html`${head}<${Loading} what="the bounce policy" />`;
  const set = (k) => (e) => { setSaved(false); setForm({ ...form, [k]: e.target.value }); };
  return html`${head}
    <p>${`Hard bounces and complaints suppress the address at once. Soft bounces suppress it for ${p.soft_suppress_days} days once ${p.soft_limit} of them fall within ${p.soft_window_days} days, with no delivery in between. Blocks (a server refusing the sender, not the address) never suppress.`}</p>
    <p class="muted">${`Bounce domain: ${p.bounce_domain || "the server's"} · ${p.updated_at ? 'changed ' + time(p.updated_at) : 'the defaults, never changed'}`}</p>
    ${!ctx.canWrite && html`<p class="muted">A key with the write scope can change it.</p>`}
    ${ctx.canWrite && html`<form class="card" onSubmit=${f.submit} novalidate>
      <div class="grid3">${POLICY.map(([k, label, min, max, hint]) => html`<${Field} id=${k} label=${label} error=${f.error} hint=${hint}>
        <input id=${k} ...${described(k, f.error)} type="number" min=${min} max=${max} required value=${form[k]} onInput=${set(k)} /><//>`)}</div>
      <${Field} id="bounce_domain" label="Bounce domain (optional)" error=${f.error}
        hint="Your own domain for the envelope sender; its MX must point at mailcast. Empty: the server's.">
        <input id="bounce_domain" ...${described('bounce_domain', f.error)} value=${form.bounce_domain} onInput=${set('bounce_domain')} placeholder="bounces.example.com" /><//>
      ${f.error && !POLICY.some(([k]) => k === f.error.field) && f.error.field !== 'bounce_domain' && html`<${ErrorBox} error=${f.error} />`}
      <div class="row"><button class="primary" disabled=${f.busy}>Save policy</button>
        ${saved && html`<span class="ok" role="status">Saved.</span>`}</div>
    </form>`}`;
}
