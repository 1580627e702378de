// campaigns.js - the tenant's campaigns: the list (live progress), one
// campaign (live counts, chart, actions, preview, test send) and the editor.
import { html, useState, useEffect, useRef, useLoad, usePoll, num, time, zone, ErrorBox, Loading,
  Empty, Progress, Status, Pager, confirmAction, Field, useSubmit, useFilters, options } from './ui.js';
import { api } from './api.js';
import { Timeline } from './chart.js';

const LIVE = ['sending'];
const POLL_MS = 2000;
const TIMELINE_MS = 15000;

// The campaigns' names by id, for the pages that name a campaign (bounces, events).
export function useCampaignNames(ctx) {
  const r = useLoad(() => api('GET', ctx.base + '/campaigns', { query: { limit: 200 } }), []);
  const rows = r.data ? r.data.data : [];
  return { ids: rows.map((c) => c.id), names: Object.fromEntries(rows.map((c) => [c.id, c.name])) };
}

export function CampaignLink({ id, names }) {
  if (!id) return '';
  return html`<a href=${'#/campaigns/' + id}>${names[id] || 'a campaign'}</a>`;
}

// A stopped campaign's messages were all settled, most by being cancelled:
// its bar shows what was sent of the total, not the API's 100 % "done".
function Bar({ c, label }) {
  const total = c.recipient_count ?? c.total_recipients;
  if (!['cancelled', 'failed'].includes(c.status) || !total)
    return html`<${Progress} value=${c.progress_percentage} label=${label} />`;
  return html`<div class="stopped"><${Progress} value=${(100 * c.sent_count) / total} label=${label}
    text=${`${num(c.sent_count)} of ${num(total)} sent`} /></div>`;
}

export function CampaignList({ ctx }) {
  const [offset, setOffset] = useState(0);
  const r = useLoad(() => api('GET', ctx.base + '/campaigns', { query: { limit: 50, offset } }), [offset]);
  const rows = r.data ? r.data.data : [];
  const live = rows.some((c) => LIVE.includes(c.status));
  usePoll(r.reload, POLL_MS, live);
  return html`<h1 tabindex="-1">Campaigns</h1>
    <div class="row">
      ${ctx.canWrite && html`<a class="button primary" href="#/edit">New campaign</a>`}
      ${live && html`<span class="muted live" role="status">Updating every 2 s while sending</span>`}
    </div>
    <${ErrorBox} error=${r.error} />
    ${r.loading && html`<${Loading} what="campaigns" />`}
    ${r.data && !rows.length && html`<${Empty}>No campaigns yet.
      ${ctx.canWrite ? ' Create one to send to a list.' : ''}<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table>
      <caption class="sr-only">Campaigns, newest first</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Progress</th>
        <th scope="col" class="n">Sent</th><th scope="col" class="n wide">Recipients</th><th scope="col" class="wide">Created</th></tr></thead>
      <tbody>${rows.map((c) => html`<tr key=${c.id}>
        <td><a href=${'#/campaigns/' + c.id}>${c.name}</a></td>
        <td><${Status} s=${c.status} /></td>
        <td class="w-progress"><${Bar} c=${c} label=${'Progress of ' + c.name} /></td>
        <td class="n">${num(c.sent_count)}</td><td class="n wide">${num(c.total_recipients)}</td>
        <td class="wide">${time(c.created_at)}</td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${r.data} onOffset=${setOffset} />`;
}

const ACTIONS = [
  // [action, label, statuses, confirmation, danger]
  ['send', 'Send now', ['draft', 'scheduled'], 'Send this campaign to its list now?', false],
  ['pause', 'Pause', ['sending'], 'Pause sending? Messages already handed to the relay still go.', false],
  ['resume', 'Resume', ['paused'], 'Resume sending?', false],
  ['cancel', 'Cancel', ['scheduled', 'sending', 'paused'], 'Cancel this campaign? Messages not yet sent will never be sent.', true],
];

const countList = (items) => html`<dl class="counts">${items.map(([k, v]) => html`<div><dt>${k}</dt><dd>${num(v)}</dd></div>`)}</dl>`;

// What happened to the messages, then what came back after they were sent.
function Counts({ s, c }) {
  const items = [['Sent', s.sent_count], ['Pending', s.pending_count + s.sending_count],
    ['Failed', s.failed_count], ['Refused (bounced)', s.bounced_count], ['Suppressed', s.suppressed_count]];
  if (s.cancelled_count) items.push(['Cancelled', s.cancelled_count]);
  const back = [['Hard bounces', s.bounced_hard_count], ['Soft bounces', s.bounced_soft_count],
    ['Complaints', s.complained_count], ['Blocked', s.blocked_count]];
  return html`${countList(items)}
    <h3 id="reported-h">Reported after sending</h3>
    ${countList(back)}
    <p class="muted"><a href=${'#/bounces?campaign_id=' + c.id}>Bounces of this campaign</a> · <a href=${'#/events?campaign_id=' + c.id}>its events</a></p>`;
}

function Schedule({ ctx, c, done }) {
  const [when, setWhen] = useState('');
  const f = useSubmit(async () => {
    const d = new Date(when);
    if (!when || isNaN(d)) throw new Error('Choose a date and time.');
    if (!(await confirmAction(`Schedule this campaign for ${time(d.toISOString())}?`, 'Schedule'))) return;
    await api('POST', `${ctx.base}/campaigns/${c.id}/schedule`, { body: { scheduled_at: d.toISOString() } });
    done();
  });
  return html`<form class="inline" onSubmit=${f.submit}>
    <label for="schedule-at">Schedule for (${zone})</label>
    <input id="schedule-at" type="datetime-local" value=${when} onInput=${(e) => setWhen(e.target.value)} />
    <button disabled=${f.busy}>Schedule</button><${ErrorBox} error=${f.error} /></form>`;
}

// The rendered HTML in a sandboxed frame: no script ever runs in it (no
// allow-scripts), links do not navigate, and it lives under the console's
// policy, so nothing is fetched from elsewhere.  That policy refuses inline
// styles in markup, so they travel as data and are applied through the
// CSSOM, which it allows: the preview keeps the message's look.
function PreviewFrame({ doc }) {
  const ref = useRef();
  const prepared = clean(doc);
  const load = () => {
    const d = ref.current && ref.current.contentDocument;
    if (!d) return;
    d.querySelectorAll('[data-mc-style]').forEach((e) => {
      e.style.cssText = e.getAttribute('data-mc-style').replace(REMOTE_URL, 'none');
      e.removeAttribute('data-mc-style');
    });
    if (prepared.css) {
      const sheet = new d.defaultView.CSSStyleSheet();
      sheet.replaceSync(prepared.css);
      d.adoptedStyleSheets = [sheet];
    }
    d.addEventListener('click', (e) => { if (e.target.closest('a')) e.preventDefault(); });
  };
  return html`${prepared.blocked > 0 && html`<p class="muted">${num(prepared.blocked)} remote image(s) not loaded in the preview.</p>`}
    <iframe ref=${ref} class="preview" sandbox="allow-same-origin" title="HTML part of the preview"
      srcdoc=${prepared.html} onLoad=${load}></iframe>`;
}

const REMOTE_URL = /url\(\s*(?!['"]?data:)[^)]*\)/gi;
const ATTR = (name) => new RegExp(`(<[a-z][^>]*?\\s)${name}(\\s*=)`, 'gi');

// Rewrites the markup as text (a DOMParser would already apply the policy
// to it and log each inline style it refuses): scripts, frames, forms and
// style sheet links go; remote images lose their source; style elements
// and attributes become data the frame's loader applies.
function clean(doc) {
  let css = '';
  let blocked = 0;
  let h = (doc || '')
    .replace(/<style\b[^>]*>([\s\S]*?)<\/style\s*>/gi, (m, text) => { css += text + '\n'; return ''; })
    .replace(/<(script|iframe|object|form)\b[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/<(script|link|base|meta|embed|frame)\b[^>]*>/gi, '')
    .replace(ATTR('style'), '$1data-mc-style$2')
    .replace(ATTR('on[a-z]+'), '$1data-mc-on$2')
    .replace(ATTR('(?:srcset|background)'), '$1data-mc-src$2')
    .replace(/(<img\b[^>]*?\s)src(\s*=\s*)("[^"]*"|'[^']*'|[^\s>]+)/gi, (m, pre, eq, v) => {
      if (/^["']?data:/i.test(v)) return m;
      blocked += 1;
      return `${pre}data-src${eq}${v}`;
    });
  css = css.replace(/@import[^;]*;/gi, '').replace(REMOTE_URL, 'none');
  return { html: h, css, blocked };
}

function Preview({ ctx, c }) {
  const rs = useLoad(() => (c.recipient_list_id
    ? api('GET', `${ctx.base}/recipient-lists/${c.recipient_list_id}/recipients`, { query: { limit: 100, status: 'active' } })
    : Promise.resolve({ data: [] })), [c.recipient_list_id]);
  const [rid, setRid] = useState('');
  const [out, setOut] = useState(null);
  const f = useSubmit(async () => {
    const chosen = rid || (rs.data && rs.data.data[0] && rs.data.data[0].id);
    const body = chosen ? { recipient_id: chosen } : { email: 'preview@example.com', name: 'Preview' };
    setOut(await api('POST', `${ctx.base}/campaigns/${c.id}/preview`, { body }));
  });
  const people = rs.data ? rs.data.data : [];
  return html`<section aria-labelledby="preview-h"><h2 id="preview-h">Preview</h2>
    <form class="inline" onSubmit=${f.submit}>
      <label for="preview-rcpt">Recipient</label>
      <select id="preview-rcpt" value=${rid || (people[0] && people[0].id) || ''} onChange=${(e) => setRid(e.target.value)}>
        ${people.length === 0 && html`<option value="">A sample recipient (preview@example.com)</option>`}
        ${people.map((p) => html`<option value=${p.id}>${p.email}${p.name ? ' — ' + p.name : ''}</option>`)}
      </select>
      <button disabled=${f.busy}>Preview</button></form>
    <${ErrorBox} error=${f.error} />
    ${out && html`<div class="preview-out">
      <p><strong>To:</strong> ${out.to} · <strong>Subject:</strong> <span class="subject">${out.subject}</span></p>
      ${out.html ? html`<${PreviewFrame} doc=${out.html} />` : html`<p class="muted">No HTML part.</p>`}
      <h3>Text part</h3>
      ${out.text ? html`<pre class="text-part">${out.text}</pre>` : html`<p class="muted">No text part.</p>`}
    </div>`}</section>`;
}

function TestSend({ ctx, c }) {
  const [to, setTo] = useState('');
  const [res, setRes] = useState(null);
  const f = useSubmit(async () => {
    const list = to.split(/[\s,;]+/).filter(Boolean);
    setRes((await api('POST', `${ctx.base}/campaigns/${c.id}/test`, { body: { to: list } })).results);
  });
  return html`<section aria-labelledby="test-h"><h2 id="test-h">Test send</h2>
    <form class="inline" onSubmit=${f.submit}>
      <label for="test-to">Send a test to</label>
      <input id="test-to" type="text" placeholder="you@example.com" value=${to} onInput=${(e) => setTo(e.target.value)} />
      <button disabled=${f.busy}>Send test</button></form>
    <${ErrorBox} error=${f.error} />
    ${res && html`<ul class="results">${res.map((x) => html`<li><${Status} s=${x.status} /> ${x.to}: ${x.reply}</li>`)}</ul>`}
  </section>`;
}

export function CampaignView({ id, ctx }) {
  const path = `${ctx.base}/campaigns/${id}`;
  const r = useLoad(() => Promise.all([api('GET', path), api('GET', path + '/stats')]), [id]);
  const [actErr, setActErr] = useState(null);
  const [c, s] = r.data || [];
  const live = c && LIVE.includes(c.status);
  usePoll(r.reload, POLL_MS, live);
  // The chart reads every sent message (O(sent)): refreshed every 15 s
  // while sending, and once whenever the status changes.
  const timeline = useLoad(() => api('GET', path + '/timeline'), [id, c && c.status]);
  usePoll(timeline.reload, TIMELINE_MS, live);
  const lastTl = useRef(null); // shown while the next one loads
  if (timeline.data) lastTl.current = timeline.data;
  const tl = lastTl.current;
  if (r.error) return html`<h1 tabindex="-1">Campaign</h1><${ErrorBox} error=${r.error} /><p><a href="#/campaigns">All campaigns</a></p>`;
  if (!c) return html`<h1 tabindex="-1">Campaign</h1><${Loading} what="the campaign" />`;
  const act = async ([a, label, , question, danger]) => {
    setActErr(null);
    if (!(await confirmAction(question, label, danger))) return;
    try { await api('POST', `${path}/${a}`); await r.reload(); } catch (e) { setActErr(e); }
  };
  const del = async () => {
    if (!(await confirmAction('Delete this campaign and its messages?', 'Delete', true))) return;
    try { await api('DELETE', path); location.hash = '#/campaigns'; } catch (e) { setActErr(e); }
  };
  const actions = ACTIONS.filter((x) => x[2].includes(c.status));
  return html`<p class="crumbs"><a href="#/campaigns">Campaigns</a></p>
    <h1 tabindex="-1">${c.name} <${Status} s=${c.status} /></h1>
    ${ctx.canWrite && html`<div class="row actions">
      ${c.status === 'draft' && html`<a class="button" href=${'#/edit/' + c.id}>Edit</a>`}
      ${actions.map((x) => html`<button type="button" class=${x[4] ? 'danger' : 'primary'} onClick=${() => act(x)}>${x[1]}</button>`)}
      ${['draft', 'completed', 'cancelled', 'failed'].includes(c.status) && html`<button type="button" class="danger" onClick=${del}>Delete</button>`}
    </div>
    ${c.status === 'draft' && html`<${Schedule} ctx=${ctx} c=${c} done=${r.reload} />`}`}
    <${ErrorBox} error=${actErr} />
    <section aria-labelledby="progress-h"><h2 id="progress-h">Progress</h2>
      <${Bar} c=${{ ...s, status: c.status }} label="Campaign progress" />
      ${c.status === 'cancelled' && html`<p><strong>Cancelled${c.completed_at ? ' ' + time(c.completed_at) : ''}:</strong> ${
        `${num(s.sent_count)} of ${num(s.recipient_count)} messages were sent; the other ${num(s.recipient_count - s.sent_count)} never will be.`}</p>`}
      <${Counts} s=${s} c=${c} />
      <p class="muted">
        ${s.materialized ? html`${num(s.total_recipients)} recipients · ${num(s.sent_last_minute)} sent in the last minute`
          : c.status === 'draft' ? 'Not sent yet' : 'Preparing the messages…'}
        ${s.effective_rate_per_minute && ['sending', 'scheduled', 'paused'].includes(c.status)
          ? html` · limit ${num(Math.round(s.effective_rate_per_minute))}/min` : ''}
        ${s.estimated_completion_at && c.status === 'sending' ? html` · done about ${time(s.estimated_completion_at)}` : ''}
        ${c.scheduled_at && c.status === 'scheduled' ? html` · starts ${time(c.scheduled_at)}` : ''}
        ${c.started_at ? html` · started ${time(c.started_at)}` : ''}
        ${c.completed_at ? html` · finished ${time(c.completed_at)}` : ''}
      </p>
      ${live && html`<p class="muted live" role="status">Updating every 2 s (the chart every 15 s)</p>`}
      <${Timeline} timeline=${tl} />
    </section>
    <section aria-labelledby="details-h"><h2 id="details-h">Details</h2>
      <dl class="details">
        <dt>Subject</dt><dd>${c.subject}</dd>
        <dt>From</dt><dd>${c.from_name ? `${c.from_name} <${c.from_address}>` : c.from_address}</dd>
        ${c.reply_to && html`<dt>Reply to</dt><dd>${c.reply_to}</dd>`}
        <dt>List</dt><dd>${c.recipient_list_id ? html`<a href=${'#/lists/' + c.recipient_list_id}>Open the list</a>` : 'none'}</dd>
        ${c.description && html`<dt>Description</dt><dd>${c.description}</dd>`}
        ${c.tags && c.tags.length > 0 && html`<dt>Tags</dt><dd>${c.tags.join(', ')}</dd>`}
      </dl></section>
    ${s.materialized && html`<${Messages} ctx=${ctx} c=${c} live=${live} />`}
    <${Preview} ctx=${ctx} c=${c} />
    ${ctx.canWrite && html`<${TestSend} ctx=${ctx} c=${c} />`}`;
}

const REPORTED = { complaint: 'complaint', auto_reply: 'auto-reply' };
const MESSAGE_STATUSES = ['pending', 'sending', 'sent', 'delivered', 'bounced', 'failed', 'cancelled', 'suppressed'];

// The campaign's messages, one row per recipient: who did not get it, and why.
function Messages({ ctx, c, live }) {
  const [offset, setOffset] = useState(0);
  const f = useFilters({ status: '', email: '' }, () => setOffset(0));
  const r = useLoad(() => api('GET', `${ctx.base}/campaigns/${c.id}/messages`,
    { query: { ...f.applied, limit: 50, offset } }), [c.id, f.applied, offset]);
  usePoll(r.reload, POLL_MS, live);
  // A message stays "sent" when a bounce comes back later: the campaign's
  // bounce records (one page) mark those rows.  Without them, no marks.
  const bounces = useLoad(() => api('GET', ctx.base + '/bounces', { query: { campaign_id: c.id, limit: 500 } }), [c.id]);
  const reported = {};
  for (const b of bounces.data ? bounces.data.data : []) if (b.message_id) reported[b.message_id] = b.class;
  const rows = r.data ? r.data.data : [];
  const when = (m) => (m.sent_at ? 'sent ' + time(m.sent_at) : m.failed_at ? time(m.failed_at)
    : m.next_attempt_at && m.status === 'pending' ? 'due ' + time(m.next_attempt_at) : '');
  return html`<section aria-labelledby="messages-h"><h2 id="messages-h">Messages</h2>
    <p class="muted">One per recipient. Choose <em>failed</em>, <em>bounced</em>, <em>suppressed</em> or <em>cancelled</em> to see who did not get it, with the mail server's last reply; a bounce reported after sending is marked beside the status.</p>
    <form class="row filters" onSubmit=${(e) => { e.preventDefault(); f.apply(); }}>
      <span class="f"><label for="mf-status">Status</label>
        <select id="mf-status" value=${f.draft.status} onChange=${f.set('status', true)}>${options(MESSAGE_STATUSES, 'any')}</select></span>
      <span class="f"><label for="mf-email">Address</label>
        <input id="mf-email" type="email" value=${f.draft.email} onInput=${f.set('email')} placeholder="exact address" /></span>
      <button>Find</button>
    </form>
    <${ErrorBox} error=${r.error} />
    ${r.data && !rows.length && html`<${Empty}>${f.applied.status || f.applied.email ? 'No message matches.' : 'No messages.'}<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table class="stack"><caption class="sr-only">Messages of the campaign</caption>
      <thead><tr><th scope="col">Address</th><th scope="col">Status</th><th scope="col">Last reply</th>
        <th scope="col" class="n wide">Attempts</th><th scope="col" class="wide">When</th></tr></thead>
      <tbody>${rows.map((m) => html`<tr key=${m.id}><td>${m.email}</td><td><${Status} s=${m.status} />${reported[m.id]
        && html` <span class=${'badge s-' + reported[m.id]}>${REPORTED[reported[m.id]] || reported[m.id] + ' bounce'} reported</span>`}</td>
        <td class="clip">${m.last_smtp_code ? m.last_smtp_code + ' ' : ''}${m.last_smtp_reply || ''}</td>
        <td class="n wide">${num(m.attempts)}</td><td class="wide">${when(m)}</td></tr>`)}</tbody></table></div>`}
    <${Pager} page=${r.data} onOffset=${setOffset} /></section>`;
}

const FIELDS = ['name', 'description', 'subject', 'from_address', 'from_name', 'reply_to',
  'recipient_list_id', 'html_body', 'text_body', 'rate_limit_per_minute', 'rate_limit_per_hour'];

function toForm(c) {
  const f = {};
  for (const k of FIELDS) f[k] = c && c[k] !== null && c[k] !== undefined ? String(c[k]) : '';
  f.tags = c && c.tags ? c.tags.join(', ') : '';
  f.metadata = c && c.metadata && Object.keys(c.metadata).length ? JSON.stringify(c.metadata, null, 2) : '';
  return f;
}

// Empty optional fields are sent as null (the API clears them).
function toBody(f) {
  const b = {};
  for (const k of FIELDS) {
    const v = f[k];
    if (['name', 'subject', 'from_address'].includes(k)) b[k] = v;
    else if (v === '') b[k] = null;
    else b[k] = k.startsWith('rate_limit') ? Number(v) : v;
  }
  b.tags = f.tags.split(',').map((t) => t.trim()).filter(Boolean);
  b.metadata = null;
  if (f.metadata.trim()) {
    try { b.metadata = JSON.parse(f.metadata); } catch (e) {
      const err = new Error('Metadata must be a JSON object: ' + e.message);
      err.field = 'metadata';
      throw err;
    }
  }
  return b;
}

export function CampaignEdit({ id, ctx }) {
  const r = useLoad(() => Promise.all([
    id ? api('GET', `${ctx.base}/campaigns/${id}`) : Promise.resolve(null),
    api('GET', `${ctx.base}/recipient-lists`, { query: { limit: 1000 } })]), [id]);
  const [form, setForm] = useState(null);
  useEffect(() => { if (r.data) setForm(toForm(r.data[0])); }, [r.data]);
  const f = useSubmit(async () => {
    const body = toBody(form);
    const c = id ? await api('PUT', `${ctx.base}/campaigns/${id}`, { body })
      : await api('POST', `${ctx.base}/campaigns`, { body });
    location.hash = '#/campaigns/' + c.id;
  });
  useEffect(() => {
    // Take the user to the field the API named.
    const e = f.error && f.error.field && document.getElementById(f.error.field === 'html' ? 'html_body'
      : f.error.field === 'text' ? 'text_body' : f.error.field);
    if (!e) return;
    e.focus();
    // A template error: put the caret at the line and column the API names.
    if (f.error.line && e.setSelectionRange) {
      const lines = e.value.split('\n');
      let at = 0;
      for (let i = 0; i < f.error.line - 1 && i < lines.length; i++) at += lines[i].length + 1;
      at += Math.max(0, (f.error.column || 1) - 1);
      e.setSelectionRange(at, at);
    }
  }, [f.error]);
  const title = id ? 'Edit campaign' : 'New campaign';
  if (r.error) return html`<h1 tabindex="-1">${title}</h1><${ErrorBox} error=${r.error} />`;
  if (!form) return html`<h1 tabindex="-1">${title}</h1><${Loading} what="the campaign" />`;
  if (!ctx.canWrite) return html`<h1 tabindex="-1">${title}</h1><p>This key is read-only.</p>`;
  const lists = r.data[1].data;
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const inv = (k) => (f.error && (f.error.field === k || f.error.field + '_body' === k) ? 'true' : undefined);
  const inp = (k, label, opts = {}) => html`<${Field} id=${k} label=${label} error=${f.error} hint=${opts.hint}>
    <input id=${k} type=${opts.type || 'text'} value=${form[k]} onInput=${set(k)} required=${opts.required}
      aria-invalid=${inv(k)} aria-describedby=${`${k}-error ${k}-hint`} min=${opts.min} /><//>`;
  const area = (k, label, hint) => html`<${Field} id=${k} label=${label} error=${f.error} hint=${hint}>
    <textarea id=${k} rows="8" value=${form[k]} onInput=${set(k)} spellcheck="false"
      aria-invalid=${inv(k)} aria-describedby=${`${k}-error ${k}-hint`}></textarea><//>`;
  const fieldless = f.error && !FIELDS.concat(['tags', 'metadata', 'html', 'text']).includes(f.error.field);
  return html`<p class="crumbs"><a href=${id ? '#/campaigns/' + id : '#/campaigns'}>${id ? 'Back to the campaign' : 'Campaigns'}</a></p>
    <h1 tabindex="-1">${title}</h1>
    <form class="card editor" onSubmit=${f.submit} novalidate>
      ${inp('name', 'Name', { required: true })}
      ${inp('subject', 'Subject', { required: true, hint: 'A template: {{name}}, {{first_name}}, {{email}}…' })}
      <div class="grid2">${inp('from_address', 'From address', { required: true, type: 'email' })}${inp('from_name', 'From name')}</div>
      ${inp('reply_to', 'Reply-To address', { type: 'email' })}
      <${Field} id="recipient_list_id" label="Recipient list" error=${f.error}>
        <select id="recipient_list_id" value=${form.recipient_list_id} onChange=${set('recipient_list_id')}
          aria-invalid=${inv('recipient_list_id')} aria-describedby="recipient_list_id-error">
          <option value="">No list yet</option>
          ${lists.map((l) => html`<option value=${l.id}>${l.name} (${num(l.active_count)} active)</option>`)}
        </select><//>
      ${area('html_body', 'HTML body', 'A template; {{{unsubscribe_url}}} is the unsubscribe link.')}
      ${area('text_body', 'Text body', 'A template; a campaign needs an HTML or a text body, or both.')}
      <div class="grid2">${inp('rate_limit_per_minute', 'Rate limit per minute (optional)', { type: 'number', min: 1 })}
        ${inp('rate_limit_per_hour', 'Rate limit per hour (optional)', { type: 'number', min: 1 })}</div>
      ${inp('tags', 'Tags (comma-separated)')}
      ${area('description', 'Description')}
      ${area('metadata', 'Metadata (a JSON object)')}
      ${fieldless && html`<${ErrorBox} error=${f.error} />`}
      ${f.error && !fieldless && html`<p class="error" role="alert">Please correct the field marked above.</p>`}
      <div class="row end"><a class="button" href=${id ? '#/campaigns/' + id : '#/campaigns'}>Cancel</a>
        <button class="primary" disabled=${f.busy}>${id ? 'Save' : 'Create campaign'}</button></div>
    </form>`;
}
