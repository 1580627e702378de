// events.js - the tenant's event log: newest first, filtered by type,
// campaign and address, paged by the API's cursor (older / newer).
import { html, useState, useLoad, time, timeSec, zone, ErrorBox, Loading, Empty, useFilters, options } from './ui.js';
import { api } from './api.js';
import { useCampaignNames, CampaignLink } from './campaigns.js';

const PAGE = 50;
export const EVENT_TYPES = ['message.sent', 'message.deferred', 'message.failed', 'message.bounced',
  'message.complained', 'message.suppressed', 'recipient.unsubscribed', 'suppression.created',
  'suppression.deleted', 'campaign.scheduled', 'campaign.started', 'campaign.paused',
  'campaign.resumed', 'campaign.cancelled', 'campaign.completed', 'campaign.failed', 'webhook.test'];

// The facts of an event worth a glance (the rest is in the API's data).
function summary(e) {
  const d = e.data || {};
  const parts = [];
  if (d.bounce_type) parts.push(d.bounce_type);
  if (d.smtp_code) parts.push(String(d.smtp_code));
  for (const k of ['smtp_reply', 'diagnostic', 'reason', 'message']) if (d[k]) parts.push(d[k]);
  if (d.previous_status) parts.push(`${d.previous_status} → ${d.status}`);
  if (d.scheduled_at) parts.push('for ' + time(d.scheduled_at));
  if (d.source && e.type !== 'message.bounced') parts.push('by ' + d.source);
  return parts.join(' · ');
}

export function Events({ ctx, query }) {
  // The cursors of the pages before this one: the last is this page's `after`.
  const [cursors, setCursors] = useState([]);
  const f = useFilters({ type: query.type || '', campaign_id: query.campaign_id || '', email: query.email || '' },
    () => setCursors([]));
  const camps = useCampaignNames(ctx);
  const after = cursors[cursors.length - 1] || '';
  const r = useLoad(() => api('GET', ctx.base + '/events', { query: { ...f.applied, after, limit: PAGE } }),
    [f.applied, after]);
  const rows = r.data ? r.data.data : [];
  const a = f.applied;
  return html`<h1 tabindex="-1">Events</h1>
    <p class="muted">Everything that happened to your messages, campaigns and addresses, newest first.
      Webhooks send the same events to your systems.</p>
    <form class="row filters" onSubmit=${(e) => { e.preventDefault(); f.apply(); }}>
      <span class="f"><label for="ef-type">Type</label>
        <select id="ef-type" value=${f.draft.type} onChange=${f.set('type', true)}>${options(EVENT_TYPES, 'any')}</select></span>
      <span class="f"><label for="ef-campaign">Campaign</label>
        <select id="ef-campaign" value=${f.draft.campaign_id} onChange=${f.set('campaign_id', true)}>
          ${options(camps.ids, 'any', camps.names)}</select></span>
      <span class="f"><label for="ef-email">Address</label>
        <input id="ef-email" type="email" value=${f.draft.email} onInput=${f.set('email')} placeholder="jane@example.com" /></span>
      <button>Apply</button>
      <button type="button" onClick=${() => (after ? setCursors([]) : r.reload())}>Show the newest</button>
    </form>
    <${ErrorBox} error=${r.error} />
    ${r.loading && html`<${Loading} what="events" />`}
    ${r.data && !rows.length && html`<${Empty}>${a.type || a.campaign_id || a.email || after
      ? 'No event matches.' : 'No events yet: they start with your first campaign.'}<//>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table class="stack"><caption class="sr-only">Events, newest first</caption>
      <thead><tr><th scope="col">Time (${zone})</th><th scope="col">Type</th><th scope="col">Address</th>
        <th scope="col" class="wide">Campaign</th><th scope="col" class="wide">Details</th></tr></thead>
      <tbody>${rows.map((e) => html`<tr key=${e.id}><td>${timeSec(e.created_at)}</td><td><code>${e.type}</code></td>
        <td>${e.data && e.data.email ? e.data.email : ''}</td>
        <td class="wide"><${CampaignLink} id=${e.data && e.data.campaign_id} names=${camps.names} /></td>
        <td class="wide clip">${summary(e)}</td></tr>`)}</tbody></table></div>`}
    ${(cursors.length > 0 || (r.data && r.data.next_after)) && html`<nav class="pager" aria-label="Pages">
      <button type="button" disabled=${!cursors.length} onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>
      <button type="button" disabled=${!(r.data && r.data.next_after)}
        onClick=${() => setCursors(cursors.concat([r.data.next_after]))}>Older</button></nav>`}`;
}
