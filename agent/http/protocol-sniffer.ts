// Outbound protocol detection, as Envoy's http_inspector does it for Istio: read the first bytes,
// decide HTTP/1.x (a request line), HTTP/2 prior knowledge (the PRI preface) or other, put them back.
import type * as net from 'node:net';

/** What http_inspector reports as the application protocol; undefined means "not HTTP". */
export type SniffedProtocol = 'http/1.0' | 'http/1.1' | 'h2c';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Envoy's http_inspector gives up after this many bytes without a complete request line. */
const MAX_INSPECT_BYTES = 8192;

const enum Verdict {
  NeedMore,
  Other,
}

function isTokenChar(c: number): boolean {
  // RFC 9110 tchar: visible ASCII except delimiters.
  if (c <= 32 || c >= 127) return false;
  return !'"(),/:;<=>?@[\\]{}'.includes(String.fromCharCode(c));
}

/**
 * Classifies the bytes seen so far: a protocol once certain, NeedMore while they are still a prefix
 * of something HTTP, Other as soon as they cannot be.
 */
export function classify(bytes: Buffer): SniffedProtocol | Verdict {
  const prefaceLength = Math.min(bytes.length, H2_PREFACE.length);
  if (bytes.compare(H2_PREFACE, 0, prefaceLength, 0, prefaceLength) === 0) {
    // "PRI" is also a valid HTTP/1 method token, so keep going only while the preface still fits.
    return bytes.length >= H2_PREFACE.length ? 'h2c' : Verdict.NeedMore;
  }
  let i = 0;
  while (i < bytes.length && isTokenChar(bytes[i]!)) i++;
  if (i === bytes.length) return i > 0 && i < 32 ? Verdict.NeedMore : Verdict.Other;
  if (i === 0 || bytes[i] !== 32) return Verdict.Other;
  const targetStart = ++i;
  while (i < bytes.length && bytes[i]! > 32 && bytes[i]! < 127) i++;
  if (i === bytes.length) return bytes.length < MAX_INSPECT_BYTES ? Verdict.NeedMore : Verdict.Other;
  if (i === targetStart || bytes[i] !== 32) return Verdict.Other;
  const version = bytes.subarray(i + 1, i + 11);
  const expected = 'HTTP/1.';
  for (let k = 0; k < version.length && k < expected.length; k++) if (version[k] !== expected.charCodeAt(k)) return Verdict.Other;
  if (version.length < 10) return Verdict.NeedMore;
  const minor = version[7];
  if (version[8] !== 13 || version[9] !== 10) return Verdict.Other;
  if (minor === 48) return 'http/1.0';
  if (minor === 49) return 'http/1.1';
  return Verdict.Other;
}

/**
 * Reads from a paused `socket` until its first bytes are classified, then unshifts them so the
 * next reader sees the connection from its first byte. Resolves undefined for non-HTTP bytes, a
 * client that ends or fails first, or no verdict within `timeoutMs` (a server-first protocol
 * whose client waits for a greeting). `timeoutMs` 0 waits without limit (declared HTTP ports).
 */
export function sniffProtocol(socket: net.Socket, timeoutMs: number): Promise<SniffedProtocol | undefined> {
  return new Promise((resolve) => {
    let seen: Buffer | undefined;
    let timer: NodeJS.Timeout | undefined;
    const finish = (result: SniffedProtocol | undefined): void => {
      if (timer) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (seen && !socket.destroyed) socket.unshift(seen);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      seen = seen ? Buffer.concat([seen, chunk]) : chunk;
      const verdict = classify(seen);
      if (verdict === Verdict.NeedMore) return;
      finish(verdict === Verdict.Other ? undefined : verdict);
    };
    const onEnd = (): void => finish(undefined);
    if (timeoutMs > 0) timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}
