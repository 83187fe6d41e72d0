// What the Bookinfo apps share: a GET that parses JSON with a deadline, and the request headers a
// Bookinfo service passes on (user identity for routing, trace context), as the real apps do.
'use strict';
const http = require('node:http');

const PROPAGATED_HEADERS = ['end-user', 'x-request-id', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled'];
const UPSTREAM_TIMEOUT_MS = 5000;

/** The headers of an incoming request that the next hop must see. */
function propagatedHeaders(request) {
  const headers = {};
  for (const name of PROPAGATED_HEADERS) {
    const value = request.headers[name];
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}

/** GET url (plain http.request: the mesh's redirection captures it); resolves with the parsed body or rejects with why not. */
function getJson(url, headers) {
  return new Promise((resolve, reject) => {
    // agent: false, a connection per call, as Bookinfo's apps make them (Python requests without a
    // session).
    const request = http.get(url, { headers, timeout: UPSTREAM_TIMEOUT_MS, agent: false }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (response.statusCode !== 200) return reject(new Error(`HTTP ${response.statusCode}${text ? `: ${text.trim().slice(0, 200)}` : ''}`));
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${UPSTREAM_TIMEOUT_MS} ms`)));
    request.on('error', reject);
  });
}

function sendJson(response, status, value) {
  const body = JSON.stringify(value);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

/** Listens on 0.0.0.0:PORT (the mesh's inbound redirection delivers to the host address) and says so on stdout. */
function serve(name, handler) {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`${name}: PORT must be a port number, got ${JSON.stringify(process.env.PORT)}`);
    process.exit(2);
  }
  const server = http.createServer((request, response) => {
    Promise.resolve(handler(request, response)).catch((error) => {
      if (!response.headersSent) sendJson(response, 500, { error: error.message });
      else response.destroy(error);
    });
  });
  server.listen(port, '0.0.0.0', () => console.log(`${name} listening on :${port}`));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}

/** Where this copy runs, for answers that say who answered. */
function identity(service) {
  return { service, version: process.env.SERVICE_VERSION || 'v1', node: process.env.NODE_NAME || require('node:os').hostname() };
}

module.exports = { getJson, identity, propagatedHeaders, sendJson, serve };
