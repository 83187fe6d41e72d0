#!/usr/bin/env node
// meshctl, the operator CLI: each subcommand lives in its own file and returns an exit code;
// this file only maps the command line onto them.
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { analyzeCommand, analyzeServerCommand } from './analyze';
import { bootstrapCommand, DEFAULT_CA_STATE_DIR } from './bootstrap';
import { demoCommand } from './demo/demo';
import { DEFAULT_AGENT_URL, PROXY_CONFIG_KINDS, proxyConfigCommand, type ProxyConfigKind } from './proxy-config';
import { DEFAULT_ADMIN_URL, proxyStatusCommand } from './proxy-status';
import { redirectCommand, type RedirectAction, type RedirectCommandOptions } from './redirect';

const io = {
  stdout: (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  stderr: (text: string) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

function finish(code: number): void {
  process.exitCode = code;
}

const program = new Command('meshctl').description('Operate the mesh: analyze config, inspect proxy sync state and agent config');

program
  .command('analyze')
  .description('validate Istio YAML files or directories offline, as mesh-server would, or ask a running mesh-server (--server); exit 1 on errors')
  .argument('[paths...]', 'files or directories (recursive)', ['/etc/mesh'])
  .option('--server <url>', 'report the issues of the config this mesh-server (admin URL) has loaded instead of reading files')
  .addOption(new Option('-o, --output <format>', 'output format').choices(['human', 'json']).default('human'))
  .action(async (paths: string[], options: { output: 'human' | 'json'; server?: string }) =>
    finish(options.server ? await analyzeServerCommand(options.server, options, io) : await analyzeCommand(paths, options, io)));

program
  .command('proxy-status')
  .description('xDS sync state of every connected agent and proxyless client, like istioctl proxy-status')
  .argument('[node]', 'show only this node')
  .option('--server <url>', 'mesh-server admin URL', process.env.MESH_ADMIN_URL ?? DEFAULT_ADMIN_URL)
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(async (node: string | undefined, options: { server: string; output: 'table' | 'json' }) =>
    finish(await proxyStatusCommand({ server: options.server, output: options.output, node }, io)));

program
  .command('proxy-config')
  .description('the xDS config a mesh-agent runs (from its admin /config_dump), like istioctl proxy-config')
  .addArgument(new Argument('<kind>', 'what to show').choices(PROXY_CONFIG_KINDS))
  .option('--agent <url>', 'mesh-agent admin URL', process.env.MESH_AGENT_ADMIN_URL ?? DEFAULT_AGENT_URL)
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(async (kind: ProxyConfigKind, options: { agent: string; output: 'table' | 'json' }) =>
    finish(await proxyConfigCommand(kind, { agent: options.agent, output: options.output }, io)));

program
  .command('bootstrap')
  .description('print a join token that lets mesh-agent on NODE get its first certificate (run on the mesh-server host: it reads the server\'s join-token secret)')
  .requiredOption('--node <name>', 'node name the agent runs as (its agent.yaml node)')
  .option('--ttl <minutes>', 'how long the token stays usable (it is single use)', (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 7 * 24 * 60) throw new InvalidArgumentError('--ttl must be whole minutes from 1 to 10080');
    return n;
  }, 60)
  .option('--ca-state-dir <dir>', 'mesh-server\'s --ca-state-dir', DEFAULT_CA_STATE_DIR)
  .action(async (options: { node: string; ttl: number; caStateDir: string }) =>
    finish(await bootstrapCommand({ node: options.node, ttlMinutes: options.ttl, caStateDir: options.caStateDir }, io)));

function portList(value: string): number[] {
  return value.split(',').filter(Boolean).map((part) => {
    const port = Number(part.trim());
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`not a port: ${JSON.stringify(part)}`);
    return port;
  });
}

function uid(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`not a uid: ${JSON.stringify(value)}`);
  return n;
}

const redirect = program
  .command('redirect')
  .description('install, verify or remove the iptables/nftables rules that send this host\'s traffic through mesh-agent');
for (const action of ['install', 'verify', 'remove'] as const satisfies readonly RedirectAction[]) {
  redirect
    .command(action)
    .description({
      install: 'install the redirection rules (idempotent)',
      verify: 'compare the rules in force with the expected ones; exit 1 with the difference when they differ',
      remove: 'remove every rule and chain of the mesh, and nothing else',
    }[action])
    .addOption(new Option('--backend <name>', 'rule backend').choices(['auto', 'iptables', 'iptables-legacy', 'nftables']).default('auto'))
    .option('--netns <name>', 'act inside this network namespace')
    .option('--agent-uid <uid>', 'uid mesh-agent runs as; its own traffic is never captured (required for install and verify)', uid)
    .option('--outbound-port <port>', 'agent outbound port', (v) => portList(v)[0]!, 15001)
    .option('--inbound-port <port>', 'agent inbound port', (v) => portList(v)[0]!, 15006)
    .option('--exclude-outbound-ports <ports>', 'comma-separated destination ports never captured', portList)
    .option('--exclude-outbound-cidrs <cidrs>', 'comma-separated destination CIDRs never captured', (v: string) => v.split(',').filter(Boolean))
    .option('--inbound-ports <ports>', 'comma-separated ports to capture inbound, or * for all', (v: string) => (v.trim() === '*' ? '*' : portList(v)))
    .option('--exclude-inbound-ports <ports>', 'comma-separated inbound ports never captured (22 never is)', portList)
    .option('--no-ipv6', 'leave IPv6 alone')
    .action(async (options: RedirectCommandOptions) => finish(await redirectCommand(action, options, io)));
}

program
  .command('demo')
  .description('run the whole mesh on this machine (root): mesh-server and four hosts simulated with network namespaces, each with mesh-agent and Bookinfo apps; Ctrl-C removes it all')
  .option('--config-dir <dir>', 'Istio YAML for mesh-server (default: the checkout\'s examples/)')
  // Exit explicitly: the demo has stopped everything it started, and nothing else should keep it alive.
  .action(async (options: { configDir?: string }) => process.exit(await demoCommand({ configDir: options.configDir }, io)));

program.parseAsync().catch((error: unknown) => {
  io.stderr(`meshctl: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 2;
});
