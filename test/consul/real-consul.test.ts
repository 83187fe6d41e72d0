// ConsulSource's core scenario against a real `consul agent -dev` when a consul binary is on PATH
// (skipped, with the reason in its title, when not), and the same scenario against the simulator.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import Consul from 'consul';
import { silentLogger } from '../../lib/log';
import { ConsulSource } from '../../server/sources/consul-source';
import { ConsulSimulator } from './consul-simulator';
import { until } from '../support/eventually';

function findOnPath(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}


/** An ephemeral port the kernel just handed out; consul's flags need numbers, not port 0. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Registers, fails, deregisters through Consul's agent HTTP API (the consul npm client), and checks
 * that ConsulSource follows each step through its long polls.
 */
async function coreScenario(t: ExecutionContext, port: number): Promise<void> {
  const consul = new Consul({ host: '127.0.0.1', port });
  t.teardown(() => consul.destroy());
  await consul.agent.service.register({
    name: 'web', id: 'web-1', address: '10.0.0.1', port: 8080, tags: ['mesh', 'version=v1'], meta: { protocol: 'http' },
    check: { name: 'web-1 ttl', ttl: '10m', status: 'passing', timeout: '1s' },
  });
  const source = new ConsulSource({ address: `127.0.0.1:${port}`, logger: silentLogger(), waitMs: 30_000, backoff: { baseMs: 20, maxMs: 200 } });
  t.teardown(() => source.stop());
  await source.start();
  const web = () => source.services().find((service) => service.hostname === 'web.service.consul');
  await until(() => source.status().ready && web() !== undefined, 'the initial load');
  t.deepEqual(source.services().map((service) => service.hostname), ['web.service.consul'], 'the consul service stays out');
  t.like(web(), { aliases: ['web', 'web.service.dc1.consul'], ports: [{ name: 'http', number: 8080, protocol: 'HTTP' }], source: 'consul' });
  t.like(web()!.endpoints[0], { address: '10.0.0.1', ports: { http: 8080 }, labels: { version: 'v1' }, healthy: true });

  await consul.agent.service.register({
    name: 'web', id: 'web-2', address: '10.0.0.2', port: 8080, tags: ['mesh', 'version=v2'], meta: { protocol: 'http' },
    check: { name: 'web-2 ttl', ttl: '10m', status: 'passing', timeout: '1s' },
  });
  await until(() => web()?.endpoints.length === 2, 'the second instance');
  t.deepEqual(web()!.endpoints.map((endpoint) => endpoint.labels.version), ['v1', 'v2']);

  await consul.agent.check.fail({ id: 'service:web-1' });
  await until(() => web()?.endpoints.map((endpoint) => endpoint.address).join() === '10.0.0.2', 'the failing instance to leave');
  await consul.agent.service.deregister('web-2');
  await until(() => web()?.endpoints.length === 0, 'the deregistered instance to leave');
  await consul.agent.service.deregister('web-1');
  await until(() => web() === undefined, 'the service to leave');
  t.is(source.status().detail, undefined);
  t.is(source.status().stats!.errors, 0);
}

test('core scenario against the simulator (the code the real-Consul run uses)', async (t) => {
  const sim = await ConsulSimulator.start();
  t.teardown(() => sim.close());
  await coreScenario(t, sim.port);
});

const consulBinary = findOnPath('consul');

if (consulBinary === undefined) {
  test.skip('core scenario against a real consul agent -dev (skipped: no consul binary on PATH)', () => {});
} else {
  test('core scenario against a real consul agent -dev', async (t) => {
    const version = /Consul v(\d+)\.(\d+)/.exec(execFileSync(consulBinary, ['version'], { encoding: 'utf8' }));
    const [major, minor] = version ? [Number(version[1]), Number(version[2])] : [0, 0];
    const [http, serfLan, serfWan, server] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    // DNS and gRPC are not needed: -1 turns them off, so the dev agent takes no fixed port
    // (its gRPC TLS port, 1.14 and later, would otherwise be 8503).
    const agent: ChildProcess = spawn(consulBinary, [
      'agent', '-dev', '-node=mesh-real-consul-test', '-bind=127.0.0.1', '-client=127.0.0.1',
      `-http-port=${http}`, `-serf-lan-port=${serfLan}`, `-serf-wan-port=${serfWan}`, `-server-port=${server}`,
      '-dns-port=-1', '-grpc-port=-1', ...(major > 1 || (major === 1 && minor >= 14) ? ['-grpc-tls-port=-1'] : []),
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    agent.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    agent.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const exited = new Promise<void>((resolve) => agent.once('exit', () => resolve()));
    t.teardown(async () => {
      if (agent.exitCode === null && agent.signalCode === null) {
        agent.kill('SIGTERM');
        const killer = setTimeout(() => agent.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(killer);
      }
    });
    const consul = new Consul({ host: '127.0.0.1', port: http });
    t.teardown(() => consul.destroy());
    await until(async () => {
      if (agent.exitCode !== null) throw new Error(`consul agent exited with ${agent.exitCode}:\n${output}`);
      try {
        return (await consul.status.leader()) !== '';
      } catch {
        return false;
      }
    }, 'the dev agent to elect itself leader', 30_000);
    await coreScenario(t, http);
  });
}
