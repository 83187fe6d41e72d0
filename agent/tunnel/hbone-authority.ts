// The HBONE destination as it travels in a CONNECT request's `:authority`: `ip:port` or `[ipv6]:port`.
// Both ends of the tunnel use these two functions, so what one writes the other accepts.
import { isIPv4, isIPv6 } from 'node:net';

export interface Destination {
  address: string;
  port: number;
}

const PORT = /^[0-9]{1,5}$/;

// Only literal IPs are accepted: the tunnel carries already-resolved workload addresses, and a
// hostname here would make the receiving agent do DNS on behalf of a remote peer.
export function parseAuthority(authority: string | undefined): Destination | undefined {
  if (authority === undefined) return undefined;
  let host: string;
  let portText: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']:');
    if (close < 0) return undefined;
    host = authority.slice(1, close);
    portText = authority.slice(close + 2);
    if (!isIPv6(host)) return undefined;
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon < 0) return undefined;
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
    if (!isIPv4(host)) return undefined;
  }
  if (!PORT.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { address: host, port };
}

export function formatAuthority(destination: Destination): string {
  return isIPv6(destination.address)
    ? `[${destination.address}]:${destination.port}`
    : `${destination.address}:${destination.port}`;
}
