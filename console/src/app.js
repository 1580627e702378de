// app.js - the console's shell: sign in, the page table, the hash router
// and the layout.  Pages are looked up in two tables (tenant and operator);
// a new API's page is one line in its table and a component.
import { render } from './vendor/preact.js';
import { html, useState, useEffect, zone, ErrorBox } from './ui.js';
import { api, savedKey, saveKey, forgetKey } from './api.js';
import { CampaignList, CampaignView, CampaignEdit } from './campaigns.js';
import { ListIndex, ListView, Suppressions, DkimKeys, RateLimitsView } from './tenant.js';
import { TenantIndex, TenantView, SystemView } from './operator.js';
import { Bounces, BounceView, BouncePolicy } from './bounces.js';
import { Events } from './events.js';
import { WebhookIndex, WebhookView } from './webhooks.js';

// path: the hash route's first segment; nav: shown in the menu.
export const tenantPages = [
  { path: 'campaigns', title: 'Campaigns', nav: true, list: CampaignList, item: CampaignView },
  { path: 'edit', title: 'Campaign editor', parent: 'campaigns', list: CampaignEdit, item: CampaignEdit },
  { path: 'lists', title: 'Lists', nav: true, list: ListIndex, item: ListView },
  { path: 'suppressions', title: 'Suppressions', nav: true, list: Suppressions },
  { path: 'bounces', title: 'Bounces', nav: true, list: Bounces, item: BounceView },
  { path: 'bounce-policy', title: 'Bounce policy', parent: 'bounces', list: BouncePolicy },
  { path: 'events', title: 'Events', nav: true, list: Events },
  { path: 'webhooks', title: 'Webhooks', nav: true, list: WebhookIndex, item: WebhookView },
  { path: 'dkim', title: 'DKIM keys', nav: true, list: DkimKeys },
  { path: 'limits', title: 'Rate limits', nav: true, list: RateLimitsView },
];
export const operatorPages = [
  { path: 'tenants', title: 'Tenants', nav: true, list: TenantIndex, item: TenantView },
  { path: 'system', title: 'System', nav: true, list: SystemView },
];

// #/page/id?k=v: the query presets a page's filters (e.g. #/events?email=…).
function parseHash() {
  const [path, q] = location.hash.replace(/^#\/?/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || '', id: parts[1] || '', q: q || '', query: Object.fromEntries(new URLSearchParams(q || '')) };
}

function SignIn({ onIn, notice }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const who = await api('GET', '/api/v1/whoami', { key: key.trim() });
      saveKey(key.trim());
      onIn(who);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin" id="main">
    <h1>mailcast console</h1>
    <form onSubmit=${submit} class="card">
      <div class="field">
        <label for="key">API key</label>
        <input id="key" type="password" autocomplete="off" spellcheck="false" required
          value=${key} onInput=${(e) => setKey(e.target.value)} aria-describedby="key-hint" />
        <small class="hint" id="key-hint">A tenant key (mck_…) or the operator key. It is kept in
          this browser tab only and sent as a header; signing out forgets it.</small>
      </div>
      ${notice && html`<p class="notice" role="status">${notice}</p>`}
      <${ErrorBox} error=${error} />
      <button class="primary" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
    </form></main>`;
}

function Shell({ who, onOut }) {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const f = () => setRoute(parseHash());
    addEventListener('hashchange', f);
    return () => removeEventListener('hashchange', f);
  }, []);
  const pages = who.role === 'operator' ? operatorPages : tenantPages;
  const page = pages.find((p) => p.path === route.page) || pages[0];
  const View = route.id && page.item ? page.item : page.list;
  const base = who.role === 'operator' ? '' : `/api/v1/tenants/${who.tenant_id}`;
  const ctx = { who, base, canWrite: who.scopes.includes('write') };
  useEffect(() => { document.title = `${page.title} · mailcast`; }, [page]);
  useEffect(() => {
    // A new page: focus its heading, so keyboard and screen-reader users start there.
    const h1 = document.querySelector('main h1');
    if (h1) h1.focus({ preventScroll: true });
  }, [route.page, route.id]);
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main').focus(); }}>Skip to content</a>
    <header class="top">
      <span class="brand">mailcast</span>
      <nav aria-label="Main">
        ${pages.filter((p) => p.nav).map((p) => html`<a href=${'#/' + p.path}
            aria-current=${p === page || p.path === page.parent ? 'page' : undefined}>${p.title}</a>`)}
      </nav>
      <div class="who">
        <span>${who.role === 'operator' ? 'Operator' : who.tenant_name}
          ${!ctx.canWrite && html` <span class="badge">read-only</span>`}</span>
        <span class="muted" title="Times are shown in this time zone">${zone}</span>
        <button type="button" class="small" onClick=${onOut}>Sign out</button>
      </div>
    </header>
    <main id="main" tabindex="-1">
      <${View} key=${route.page + '/' + route.id + '?' + route.q} id=${route.id} query=${route.query} ctx=${ctx} />
    </main>`;
}

function App() {
  const [who, setWho] = useState(null);
  const [state, setState] = useState(savedKey() ? 'checking' : 'out');
  const [notice, setNotice] = useState('');
  useEffect(() => {
    if (state !== 'checking') return;
    api('GET', '/api/v1/whoami').then((w) => { setWho(w); setState('in'); }, (e) => {
      forgetKey();
      setNotice(e.status === 401 ? 'Your key no longer works; sign in again.' : e.message);
      setState('out');
    });
  }, [state]);
  const out = () => { forgetKey(); setWho(null); setNotice('You are signed out.'); setState('out'); location.hash = ''; };
  if (state === 'checking') return html`<p class="boot">Checking your key…</p>`;
  if (state === 'out') return html`<${SignIn} notice=${notice} onIn=${(w) => { setWho(w); setState('in'); }} />`;
  return html`<${Shell} who=${who} onOut=${out} />`;
}

const root = document.getElementById('app');
root.textContent = ''; // the "Loading" line of index.html
render(html`<${App} />`, root);
