// Stand-in for Helios, the practices' Next.js site: one multi-tenant server
// that picks the practice from the Host header, as the real proxy does, and
// renders its content from Aletheia's websites API.
// No npm dependencies; configured through the environment:
//   PORT, HOSTNAME          where to listen (3000, 0.0.0.0)
//   COMMIT                  the git commit baked in at build time
//   HELIOS_PRACTICES        JSON {"domain": {"code": "cda", "name": "..."}}
//   REVALIDATION_SECRET     the secret POST /api/revalidate must carry
//   ALETHEIA_API_URL        http://aletheia-ENV-web:8000/api/v1/websites/
//
// Content works like Next.js ISR: a practice's content is fetched once and
// kept until Aletheia's webhook revalidates its tag (website:CODE), and
// refreshed in the background after REVALIDATE_SECONDS. When the API cannot
// be reached the page still answers, with the last content it had (or none).
'use strict';
const http = require('http');

const port = Number(process.env.PORT || 3000);
const host = process.env.HOSTNAME || '0.0.0.0';
const commit = process.env.COMMIT || 'unknown';
const practices = JSON.parse(process.env.HELIOS_PRACTICES || '{}');
const secret = process.env.REVALIDATION_SECRET || '';
const api = process.env.ALETHEIA_API_URL || '';
const maxAge = Number(process.env.REVALIDATE_SECONDS || 300) * 1000;
const revalidated = [];
const content = new Map(); // practice code -> {website, at, stale}
const inflight = new Map(); // practice code -> the fetch under way

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'X-Helios-Commit': commit });
  res.end(body);
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function practiceFor(req) {
  const name = String(req.headers.host || '').split(':')[0].toLowerCase();
  return practices[name];
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

// GET a JSON document from the API: resolves {status, body} or rejects.
function getJson(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 3000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks)) });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

// Fetch a practice's content into the cache; a failure keeps what was there.
function refresh(code) {
  if (!inflight.has(code)) {
    const url = `${api}${encodeURIComponent(code)}/`;
    inflight.set(code, getJson(url)
      .then(({ status, body }) => {
        if (status === 200) content.set(code, { website: body, at: Date.now(), stale: false });
      })
      .catch(() => {})
      .finally(() => inflight.delete(code)));
  }
  return inflight.get(code);
}

function within(promise, ms) {
  return Promise.race([promise, new Promise((resolve) => setTimeout(resolve, ms).unref())]);
}

// Fresh content is served from the cache; expired content too, while it is
// refetched in the background; content the webhook revalidated (or never
// fetched) is refetched before answering, for up to 1.5 s.
async function websiteOf(code) {
  const cached = content.get(code);
  if (!api || (cached && !cached.stale && Date.now() - cached.at < maxAge)) {
    return cached ? cached.website : null;
  }
  const pending = refresh(code);
  if (!cached || cached.stale) await within(pending, 1500);
  const now = content.get(code);
  return now ? now.website : null;
}

async function revalidate(req, res) {
  let payload = {};
  try { payload = JSON.parse(await readBody(req)); } catch (e) { payload = {}; }
  if (!secret || payload.secret !== secret) {
    return send(res, 401, 'application/json', '{"revalidated":false}');
  }
  const tags = Array.isArray(payload.tags) ? payload.tags : [];
  for (const tag of tags) {
    const match = /^website:(.+)$/.exec(String(tag));
    if (match && content.has(match[1])) content.get(match[1]).stale = true;
  }
  revalidated.push(...tags);
  send(res, 200, 'application/json', JSON.stringify({ revalidated: true, tags }));
}

// Whether the Aletheia API answers from here right now (never cached).
async function aletheiaLink(res) {
  try {
    const { status } = await getJson(api);
    send(res, status === 200 ? 200 : 502, 'application/json', JSON.stringify({ api, status }));
  } catch (e) {
    send(res, 502, 'application/json', JSON.stringify({ api, error: String(e.message) }));
  }
}

async function page(req, res) {
  const practice = practiceFor(req);
  if (!practice) {
    // An environment's own domain (staging.helios...): list its practices.
    const names = [...new Set(Object.values(practices).map((p) => p.name))];
    return send(res, 200, 'text/html; charset=utf-8',
      `<!doctype html><title>Helios</title><p data-practice="">commit ${commit}</p>` +
      `<ul>${names.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>\n`);
  }
  const website = await websiteOf(practice.code);
  const block = website
    ? `<h2 data-headline>${escapeHtml(website.headline)}</h2>` +
      `<div data-body>${escapeHtml(website.body || '')}</div>`
    : '<p data-content="unavailable">Contenu bientôt disponible.</p>';
  send(res, 200, 'text/html; charset=utf-8',
    `<!doctype html><title>${escapeHtml(practice.name)}</title>` +
    `<h1>${escapeHtml(practice.name)}</h1><p data-practice="${practice.code}">` +
    `practice ${practice.code} commit ${commit}</p>${block}\n`);
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/api/health') {
    return send(res, 200, 'application/json', JSON.stringify({ status: 'ok', commit }));
  }
  if (path === '/api/health/aletheia') return aletheiaLink(res);
  if (path === '/api/slow') {
    // A long request (a large page, a slow API) to check that deploys let it finish.
    const ms = Math.min(Number(new URLSearchParams(req.url.split('?')[1]).get('ms')) || 0, 60000);
    return setTimeout(() => send(res, 200, 'application/json', JSON.stringify({ slept: ms, commit })), ms);
  }
  if (path === '/api/revalidate' && req.method === 'POST') return revalidate(req, res);
  page(req, res).catch(() => send(res, 500, 'text/plain', 'error\n'));
});

server.listen(port, host, () => console.log(`helios ${commit} listening on ${host}:${port}`));

// Finish in-flight requests before exiting, so a stop never cuts one off.
function shutdown(signal) {
  console.log(`helios ${commit} received ${signal}, closing`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 60000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
