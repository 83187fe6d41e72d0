// One Consul HTTP query as the watches see it: the options every call takes, the answer with its
// X-Consul-Index, what a failure means in an operator's words, and the retry delay after one.
import type { EventEmitter } from 'node:events';
import http from 'node:http';
import { z } from 'zod';

/** What an error from the Consul client means, in words an operator can act on. */
export function describeConsulError(error: unknown): string {
  if (error instanceof z.ZodError) {
    const issue = error.issues[0];
    return `unexpected response body: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : error.message}`;
  }
  if (!(error instanceof Error)) return String(error);
  const detail = error as Error & {
    code?: string; syscall?: string; isResponse?: boolean; isCodec?: boolean; isTimeout?: boolean;
    response?: { statusCode?: number; body?: unknown };
  };
  // The client prefixes messages with `consul: <call>: `; the detail already says it is Consul.
  const message = error.message.replace(/^consul: [\w.]+: /, '');
  if (detail.isResponse && detail.response?.statusCode !== undefined) {
    const body = typeof detail.response.body === 'string' && detail.response.body.trim() !== '' ? detail.response.body.trim() : message;
    const status = detail.response.statusCode;
    let hint = '';
    if (status === 403 && body.includes('ACL not found')) hint = ' (the ACL token is not known to Consul)';
    else if (status === 403) hint = ' (the ACL token lacks a permission)';
    return `HTTP ${status} ${body}${hint}`;
  }
  if (detail.syscall && detail.code) return `${detail.syscall} ${detail.code}`;
  if (detail.isCodec) return `invalid JSON in the response: ${message.replace(/^decode \(application\/json\) failed: /, '')}`;
  if (detail.isTimeout) return `no response within the request timeout (${message})`;
  if (detail.code) return `${message} (${detail.code})`;
  return message;
}

/**
 * Options every call of the client takes (its README: index, wait, ctx, timeout) but its typings
 * leave out; passed as a typed variable rather than a literal so the declared options still apply.
 */
export interface ConsulCallOptions {
  dc?: string;
  /** Consul's filter expression, evaluated on the server. */
  filter?: string;
  /** Absent for a query that answers at once. */
  index?: string;
  wait?: string;
  /** Emitting `cancel` aborts the request; `includeResponse` makes the call resolve [response, body]. */
  ctx: EventEmitter;
  timeout: number;
}

export interface QueryResult {
  body: unknown;
  /** X-Consul-Index, 0 when missing or unparsable. */
  index: bigint;
  filteredByAcls: boolean;
}

/** A 200 answer's body with what its headers say about it. */
export function queryResult(response: http.IncomingMessage, body: unknown): QueryResult {
  const header = response.headers['x-consul-index'];
  return {
    body,
    index: typeof header === 'string' && /^\d+$/.test(header) ? BigInt(header) : 0n,
    filteredByAcls: response.headers['x-consul-results-filtered-by-acls'] === 'true',
  };
}

/** The client resolves `[response, body]` when its ctx has includeResponse set. */
export function unpack(result: unknown): QueryResult {
  if (!Array.isArray(result) || !(result[0] instanceof http.IncomingMessage)) {
    throw new Error('the Consul client returned no HTTP response');
  }
  return queryResult(result[0], result[1]);
}

/** Exponential backoff with full jitter after `attempt` consecutive failures. */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.round(Math.random() * Math.min(maxMs, baseMs * 2 ** attempt));
}
