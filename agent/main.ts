#!/usr/bin/env node
// mesh-agent's command line: /etc/mesh/agent.yaml with flags on top, the MeshAgent started from it,
// and signals to lifecycle (SIGTERM/SIGINT remove the redirection, drain and exit 0).
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger } from '../lib/log';
import { AgentConfigError, DEFAULT_AGENT_CONFIG_PATH, loadAgentConfig, type AgentConfigOverrides } from './config/agent-config';
import { AgentIdentity } from './identity/agent-identity';
import { MeshAgent } from './mesh-agent';

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

const program = new Command('mesh-agent')
  .description('Data plane of the mesh: transparent TCP proxy with agent-to-agent tunnels, configured over xDS')
  .option('--config <file>', 'agent configuration file', DEFAULT_AGENT_CONFIG_PATH)
  .option('--server <host:port>', 'mesh-server xDS address (overrides the file)')
  .option('--node <name>', 'node name, as WorkloadEntries name it in mesh.io/node (overrides the file)')
  .option('--state-dir <dir>', 'where the last accepted config is kept (overrides the file)')
  .option('--no-redirect', 'do not install iptables/nftables redirection (it is installed by default)')
  .addOption(new Option('--redirect-backend <name>', 'redirection backend').choices(['auto', 'iptables', 'iptables-legacy', 'nftables']))
  .option('--admin-address <host:port>', 'admin API (config_dump, clusters, logging, stats); loopback only unless you mean it (overrides the file, default 127.0.0.1:15000)')
  .option('--readiness-address <[host]:port>', 'readiness probe GET /healthz/ready (overrides the file, default :15021)')
  .option('--drain-ms <ms>', 'how long open connections may finish after SIGTERM', integer('--drain-ms', 0, 600_000), 5000)
  .addOption(new Option('--log-level <level>', 'log level (overrides the file)').choices(['trace', 'debug', 'info', 'warn', 'error']));

async function main(): Promise<void> {
  program.parse();
  const flags = program.opts<{
    config: string; server?: string; node?: string; stateDir?: string; redirect: boolean;
    redirectBackend?: 'auto' | 'iptables' | 'iptables-legacy' | 'nftables'; drainMs: number; logLevel?: string;
    adminAddress?: string; readinessAddress?: string;
  }>();
  const overrides: AgentConfigOverrides = {
    server: flags.server,
    node: flags.node,
    stateDir: flags.stateDir,
    logLevel: flags.logLevel as AgentConfigOverrides['logLevel'],
    admin: flags.adminAddress,
    readiness: flags.readinessAddress,
    redirect: flags.redirectBackend ? { backend: flags.redirectBackend } : undefined,
  };
  const config = await loadAgentConfig(flags.config, overrides);
  const logger = createLogger({ name: 'mesh-agent', level: config.logLevel });
  const identity = await AgentIdentity.create(config, logger);
  const agent = new MeshAgent({ config, logger, redirect: flags.redirect, identity });

  let stopping = false;
  const stop = (signal: string, exitCode = 0): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drainMs: flags.drainMs }, 'draining');
    agent.stop(flags.drainMs).then(
      () => {
        logger.info('mesh-agent stopped');
        logger.flush();
        process.exit(exitCode);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  await agent.start();
  agent.ready.catch((error: unknown) => {
    // Without its redirection the agent would run but capture nothing: better to fail loudly.
    logger.fatal({ err: error }, 'mesh-agent cannot become ready');
    stop('not-ready', 1);
  });
}

main().catch((error: unknown) => {
  const message = error instanceof AgentConfigError || error instanceof Error ? error.message : String(error);
  process.stderr.write(`mesh-agent: ${message}\n`);
  process.exit(1);
});
