// api.js - the console's only way to the server: the public API under
// /api/v1 with the key the user typed, sent as a header.  The key lives in
// sessionStorage (this tab only, gone when it closes), never in a URL or a
// cookie.  Errors carry the API's own message, field, line and column.

const KEY = 'mailcast.key';

export function savedKey() { return sessionStorage.getItem(KEY); }
export function saveKey(k) { sessionStorage.setItem(KEY, k); }
export function forgetKey() { sessionStorage.removeItem(KEY); }

export class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    super(e && e.message ? e.message : `the server answered ${status}`);
    this.status = status;
    this.code = e ? e.code : 'http_' + status;
    this.field = e ? e.field : undefined;
    this.line = e ? e.line : undefined;
    this.column = e ? e.column : undefined;
    this.body = body;
  }
}

function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {}))
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return path + (s ? '?' + s : '');
}

async function parse(r) {
  const type = r.headers.get('Content-Type') || '';
  if (r.status === 204) return null;
  return type.includes('json') ? r.json() : r.text();
}

// One API call: JSON in and out.  Throws ApiError with the API's message.
export async function api(method, path, { body, query, key } = {}) {
  const headers = { Authorization: 'Bearer ' + (key || savedKey() || '') };
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(url(path, query), init);
  } catch (e) {
    throw new ApiError(0, { error: { code: 'network', message: 'The server cannot be reached.' } });
  }
  const data = await parse(r);
  if (!r.ok) throw new ApiError(r.status, typeof data === 'object' ? data : null);
  return data;
}

// A file sent as the body (CSV import), with upload progress: fetch cannot
// report it, XMLHttpRequest can.  onProgress gets a fraction 0..1.
export function upload(path, file, type, query, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', url(path, query));
    x.setRequestHeader('Authorization', 'Bearer ' + (savedKey() || ''));
    x.setRequestHeader('Content-Type', type);
    x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    x.onload = () => {
      let data = null;
      try { data = JSON.parse(x.responseText); } catch (e) { /* not JSON */ }
      onProgress(1);
      if (x.status >= 200 && x.status < 300) resolve(data);
      else reject(new ApiError(x.status, data));
    };
    x.onerror = () => reject(new ApiError(0, { error: { message: 'The upload failed: the server cannot be reached.' } }));
    x.send(file);
  });
}

// A download (export) with the key in a header: fetched, then saved from a blob.
export async function download(path, filename) {
  const r = await fetch(path, { headers: { Authorization: 'Bearer ' + (savedKey() || '') }, credentials: 'omit' });
  if (!r.ok) throw new ApiError(r.status, await parse(r).catch(() => null));
  const blob = await r.blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// The server's metrics (Prometheus text) as {name: [{labels, value}]}: they
// take the operator key, sent like every API call's (never in the URL).
export async function metrics() {
  const r = await fetch('/metrics', {
    cache: 'no-store', credentials: 'omit',
    headers: { Authorization: `Bearer ${savedKey() || ''}` },
  });
  if (!r.ok) throw new ApiError(r.status, null);
  const out = {};
  for (const line of (await r.text()).split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const p of (m[2] || '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
    (out[m[1]] = out[m[1]] || []).push({ labels, value: Number(m[3]) });
  }
  return out;
}
