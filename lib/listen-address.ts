// Listen addresses as flags and config files write them: `host:port`, `[v6]:port`, or `:port` for
// every IPv4 interface (as Istio writes :15021). Port 0 picks a free port.

export function parseListenAddress(address: string, what = 'listen address'): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new Error(`${what} ${JSON.stringify(address)}: expected host:port, [v6]:port or :port`);
  }
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}
