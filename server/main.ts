#!/usr/bin/env node
// mesh-server's command line: flags (and Consul's own environment variables) to MeshServer
// options, signals to lifecycle (SIGTERM/SIGINT drain and exit, SIGHUP reloads the config files).
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger } from '../lib/log';
import { MeshServer, type MeshServerOptions } from './mesh-server';

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function metaPairs(pairs: string[]): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new InvalidArgumentError(`--consul-meta expects key=value, got ${JSON.stringify(pair)}`);
    meta[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return meta;
}

const program = new Command('mesh-server')
  .description('Control plane of the mesh: Istio config from files, services from Consul, xDS v3 to agents and proxyless gRPC')
  .option('--config-dir <dir>', 'directory of Istio YAML resources, read recursively and watched', '/etc/mesh')
  .option('--xds-address <host:port>', 'plaintext xDS (ADS) listen address, for development only; giving it turns plaintext on (and, unless --secure-xds-address is given too, the TLS port off)')
  .option('--xds-plaintext', 'serve plaintext xDS on 0.0.0.0:15010 (development only), same as --xds-address 0.0.0.0:15010', false)
  .option('--secure-xds-address <host:port>', 'xDS and the CA over TLS with client certificates (default 0.0.0.0:15012 unless only plaintext was asked for)')
  .option('--ca-state-dir <dir>', 'where the generated root CA key and the join-token secret are kept (0600)', '/var/lib/mesh-server')
  .option('--ca-cert-file <file>', 'PEM certificate of your own CA (root or intermediate) to sign with, instead of a generated root')
  .option('--ca-key-file <file>', 'private key of --ca-cert-file')
  .option('--ca-chain-file <file>', 'PEM certificates from --ca-cert-file\'s issuer up to the root')
  .option('--ca-additional-root <file>', 'another root to trust, for root rotation (repeatable)', collect, [] as string[])
  .option('--ca-leaf-ttl <hours>', 'lifetime of workload and node certificates', integer('--ca-leaf-ttl', 1, 90 * 24), 24)
  .option('--serving-dns-name <name>', 'DNS name agents dial the TLS port by, put into the server certificate (repeatable; default localhost)', collect, [] as string[])
  .option('--serving-ip <ip>', 'IP address agents dial the TLS port by, put into the server certificate (repeatable; default the listen address, or 127.0.0.1)', collect, [] as string[])
  .option('--admin-address <host:port>', 'admin HTTP listen address (/ready, /metrics, /debug/*)', '0.0.0.0:15014')
  .option('--debounce-ms <ms>', 'quiet time that ends a burst of changes before pushing', integer('--debounce-ms', 0, 60_000), 100)
  .option('--trust-domain <domain>', 'SPIFFE trust domain of workload identities', 'cluster.local')
  .option('--root-namespace <ns>', 'namespace whose PeerAuthentication/Sidecar apply mesh-wide', 'istio-system')
  .addOption(new Option('--consul-address <addr>', 'Consul HTTP address (host:port or URL); enables the Consul catalog').env('CONSUL_HTTP_ADDR'))
  .addOption(new Option('--consul-token <token>', 'Consul ACL token').env('CONSUL_HTTP_TOKEN'))
  .addOption(new Option('--consul-ca-file <file>', 'CA certificate that signed Consul\'s HTTPS certificate').env('CONSUL_CACERT'))
  .addOption(new Option('--consul-cert-file <file>', 'client certificate for Consul HTTPS').env('CONSUL_CLIENT_CERT'))
  .addOption(new Option('--consul-key-file <file>', 'client key for Consul HTTPS').env('CONSUL_CLIENT_KEY'))
  .addOption(new Option('--consul-tls-server-name <name>', 'server name to verify Consul\'s certificate against').env('CONSUL_TLS_SERVER_NAME'))
  .option('--consul-datacenter <dc>', 'Consul datacenter to read (default: the agent\'s own)')
  .option('--consul-tag <tag>', 'only services carrying this tag join the mesh')
  .option('--consul-meta <key=value>', 'only services whose meta has key=value join the mesh (repeatable)', collect, [] as string[])
  .option('--consul-include-unhealthy', 'also map instances whose checks are not passing (marked unhealthy)', false)
  .option('--consul-namespace <ns>', 'Istio namespace that Consul services are placed in', 'default')
  .option('--consul-max-connections <n>', 'connections to Consul at most (three long polls, the rest for service queries; Consul allows 200 per client IP)', integer('--consul-max-connections', 4, 100_000), 150)
  .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error']).default(process.env.MESH_LOG_LEVEL ?? 'info'));

async function main(): Promise<void> {
  program.parse();
  const flags = program.opts<{
    configDir: string; xdsAddress?: string; xdsPlaintext: boolean; secureXdsAddress?: string; caStateDir: string; caCertFile?: string; caKeyFile?: string;
    caChainFile?: string; caAdditionalRoot: string[]; caLeafTtl: number; servingDnsName: string[]; servingIp: string[]; adminAddress: string; debounceMs: number; trustDomain: string; rootNamespace: string;
    consulAddress?: string; consulToken?: string; consulCaFile?: string; consulCertFile?: string; consulKeyFile?: string;
    consulTlsServerName?: string; consulDatacenter?: string; consulTag?: string; consulMeta: string[]; consulIncludeUnhealthy: boolean;
    consulNamespace: string; consulMaxConnections: number; logLevel: string;
  }>();
  const logger = createLogger({ name: 'mesh-server', level: flags.logLevel });
  const options: MeshServerOptions = {
    logger,
    configDir: flags.configDir,
    xdsAddress: flags.xdsAddress ?? (flags.xdsPlaintext ? '0.0.0.0:15010' : undefined),
    adminAddress: flags.adminAddress,
    debounceMs: flags.debounceMs,
    trustDomain: flags.trustDomain,
    rootNamespace: flags.rootNamespace,
  };
  if (flags.consulAddress) {
    const tls = flags.consulCaFile || flags.consulCertFile || flags.consulKeyFile || flags.consulTlsServerName
      ? { caFile: flags.consulCaFile, certFile: flags.consulCertFile, keyFile: flags.consulKeyFile, serverName: flags.consulTlsServerName }
      : undefined;
    const meta = metaPairs(flags.consulMeta);
    options.consul = {
      address: flags.consulAddress,
      token: flags.consulToken,
      tls,
      datacenter: flags.consulDatacenter,
      filter: flags.consulTag || Object.keys(meta).length ? { tag: flags.consulTag, meta } : undefined,
      passingOnly: !flags.consulIncludeUnhealthy,
      namespace: flags.consulNamespace,
      maxConnections: flags.consulMaxConnections,
    };
  }

  // Plaintext is only ever on because someone asked; the TLS port is on unless plaintext alone was asked for.
  const secureAddress = flags.secureXdsAddress ?? (options.xdsAddress ? undefined : '0.0.0.0:15012');
  if (secureAddress) {
    if (Boolean(flags.caCertFile) !== Boolean(flags.caKeyFile)) throw new InvalidArgumentError('--ca-cert-file and --ca-key-file go together');
    options.secure = {
      address: secureAddress,
      caStateDir: flags.caStateDir,
      pluggedIn: flags.caCertFile ? { certFile: flags.caCertFile, keyFile: flags.caKeyFile!, chainFile: flags.caChainFile } : undefined,
      additionalRootFiles: flags.caAdditionalRoot,
      leafTtlMs: flags.caLeafTtl * 3600 * 1000,
      servingDnsNames: flags.servingDnsName.length ? flags.servingDnsName : undefined,
      servingIpAddresses: flags.servingIp.length ? flags.servingIp : undefined,
    };
  }
  const server = new MeshServer(options);
  await server.start();

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.stop().then(
      () => { logger.flush(); process.exit(0); },
      (error: unknown) => { logger.error({ err: error }, 'shutdown failed'); process.exit(1); },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading config files');
    server.reload().catch((error: unknown) => logger.error({ err: error }, 'reload failed'));
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`mesh-server: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
