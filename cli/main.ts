#!/usr/bin/env node
// meshctl, the operator CLI: each subcommand lives in its own file and returns an exit code;
// this file only maps the command line onto them.
import { Command, Option } from 'commander';
import { analyzeCommand } from './analyze';
import { DEFAULT_ADMIN_URL, proxyStatusCommand } from './proxy-status';

const io = {
  stdout: (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  stderr: (text: string) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

function finish(code: number): void {
  process.exitCode = code;
}

const program = new Command('meshctl').description('Operate the mesh: analyze config, inspect proxy sync state');

program
  .command('analyze')
  .description('validate Istio YAML files or directories offline, as mesh-server would (exit 1 on errors)')
  .argument('[paths...]', 'files or directories (recursive)', ['/etc/mesh'])
  .addOption(new Option('-o, --output <format>', 'output format').choices(['human', 'json']).default('human'))
  .action(async (paths: string[], options: { output: 'human' | 'json' }) => finish(await analyzeCommand(paths, options, io)));

program
  .command('proxy-status')
  .description('xDS sync state of every connected agent and proxyless client, like istioctl proxy-status')
  .argument('[node]', 'show only this node')
  .option('--server <url>', 'mesh-server admin URL', process.env.MESH_ADMIN_URL ?? DEFAULT_ADMIN_URL)
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
  .action(async (node: string | undefined, options: { server: string; output: 'table' | 'json' }) =>
    finish(await proxyStatusCommand({ server: options.server, output: options.output, node }, io)));

program.parseAsync().catch((error: unknown) => {
  io.stderr(`meshctl: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 2;
});
