// Stand-in for Helios, the practices' Next.js site: one multi-tenant server
// that picks the practice from the Host header, as the real proxy does.
// No npm dependencies; configured through the environment:
//   PORT, HOSTNAME          where to listen (3000, 0.0.0.0)
//   COMMIT                  the git commit baked in at build time
//   HELIOS_PRACTICES        JSON {"domain": {"code": "cda", "name": "..."}}
//   REVALIDATION_SECRET     the secret POST /api/revalidate must carry
'use strict';
const http = require('http');

const port = Number(process.env.PORT || 3000);
const host = process.env.HOSTNAME || '0.0.0.0';
const commit = process.env.COMMIT || 'unknown';
const practices = JSON.parse(process.env.HELIOS_PRACTICES || '{}');
const secret = process.env.REVALIDATION_SECRET || '';
const revalidated = [];

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'X-Helios-Commit': commit });
  res.end(body);
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

async function revalidate(req, res) {
  let payload = {};
  try { payload = JSON.parse(await readBody(req)); } catch (e) { payload = {}; }
  if (!secret || payload.secret !== secret) {
    return send(res, 401, 'application/json', '{"revalidated":false}');
  }
  revalidated.push(...(payload.tags || []));
  send(res, 200, 'application/json', JSON.stringify({ revalidated: true, tags: payload.tags || [] }));
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/api/health') {
    return send(res, 200, 'application/json', JSON.stringify({ status: 'ok', commit }));
  }
  if (path === '/api/revalidate' && req.method === 'POST') return revalidate(req, res);
  const practice = practiceFor(req);
  if (!practice) {
    // An environment's own domain (staging.helios...): list its practices.
    const names = [...new Set(Object.values(practices).map((p) => p.name))];
    return send(res, 200, 'text/html; charset=utf-8',
      `<!doctype html><title>Helios</title><p data-practice="">commit ${commit}</p>` +
      `<ul>${names.map((n) => `<li>${n}</li>`).join('')}</ul>\n`);
  }
  send(res, 200, 'text/html; charset=utf-8',
    `<!doctype html><title>${practice.name}</title>` +
    `<h1>${practice.name}</h1><p data-practice="${practice.code}">` +
    `practice ${practice.code} commit ${commit}</p>\n`);
});

server.listen(port, host, () => console.log(`helios ${commit} listening on ${host}:${port}`));

// Finish in-flight requests before exiting, so a stop never cuts one off.
function shutdown(signal) {
  console.log(`helios ${commit} received ${signal}, closing`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 10000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
