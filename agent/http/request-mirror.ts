// Envoy's request mirroring (Istio's mirror / mirrors): a copy of the request goes to another
// cluster with "-shadow" added to its host, fire and forget. Its response is read and thrown away,
// and nothing about it (slowness, failure) reaches the caller's exchange.
import { finished } from 'node:stream';
import { attemptUpstream, type UpstreamRequest } from './upstream-attempt';
import type { UpstreamPool } from './upstream-pool';

/** Envoy's shadow host: "-shadow" after the host name, before any port ("web:8080" → "web-shadow:8080"). */
export function shadowAuthority(authority: string): string {
  const colon = authority.lastIndexOf(':');
  // A bracketed IPv6 literal without a port ends in "]".
  if (colon > 0 && colon > authority.lastIndexOf(']')) return `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`;
  return `${authority}-shadow`;
}

export interface MirrorResult {
  readonly ok: boolean;
  readonly detail: string;
}

/** Sends a shadow request and drains its response; `done` hears how it went, for counters and logs. */
export function sendShadow(pool: UpstreamPool, request: UpstreamRequest, done: (result: MirrorResult) => void): void {
  void attemptUpstream(pool, request).then((outcome) => {
    if (outcome.kind !== 'response') return done({ ok: false, detail: `${outcome.kind}: ${outcome.message}` });
    const body = outcome.response.body;
    const status = outcome.response.status;
    finished(body, (error) => done({ ok: !error && status < 500, detail: error ? `status ${status}, ${error.message}` : `status ${status}` }));
    body.resume();
  });
}
