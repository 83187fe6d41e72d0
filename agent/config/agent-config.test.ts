// Loading /etc/mesh/agent.yaml: a full valid file, errors that name file, field path and value,
// defaults, flags over file values, and running on flags alone when there is no file.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { AgentConfigError, FLAGS_SOURCE, loadAgentConfig, mergeAgentConfig } from './agent-config';

async function configFile(t: ExecutionContext, yaml: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'agent-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'agent.yaml');
  await writeFile(file, yaml);
  return file;
}

async function loadError(t: ExecutionContext, promise: Promise<unknown>): Promise<AgentConfigError> {
  const error = await t.throwsAsync(promise, { instanceOf: AgentConfigError });
  return error as AgentConfigError;
}

test('a complete file is read with every field as written', async (t) => {
  const file = await configFile(t, `
server: mesh-server.service.consul:15010
node: host-a
namespace: bookinfo
trustDomain: example.org
stateDir: /srv/mesh
workloads:
  - { name: productpage, serviceAccount: bookinfo-productpage, uid: 1001, ports: { http: 9080 } }
redirect:
  enabled: true
  backend: nftables
  outboundPort: 16001
  inboundPort: 16006
  excludeOutboundPorts: [22]
  excludeOutboundCidrs: [169.254.169.254/32, fd00::/8]
  inboundPorts: [9080]
  excludeInboundPorts: [22]
  ipv6: true
admin: 127.0.0.1:16000
readiness: '[::1]:16021'
locality: eu/eu-west-1a/rack-3
logLevel: debug
`);
  const config = await loadAgentConfig(file);
  t.deepEqual(config, {
    server: 'mesh-server.service.consul:15010',
    node: 'host-a',
    namespace: 'bookinfo',
    trustDomain: 'example.org',
    stateDir: '/srv/mesh',
    workloads: [{ name: 'productpage', serviceAccount: 'bookinfo-productpage', uid: 1001, ports: { http: 9080 } }],
    redirect: {
      enabled: true,
      backend: 'nftables',
      outboundPort: 16001,
      inboundPort: 16006,
      excludeOutboundPorts: [22],
      excludeOutboundCidrs: ['169.254.169.254/32', 'fd00::/8'],
      inboundPorts: [9080],
      excludeInboundPorts: [22],
      ipv6: true,
    },
    admin: '127.0.0.1:16000',
    readiness: '[::1]:16021',
    locality: 'eu/eu-west-1a/rack-3',
    logLevel: 'debug',
  });
});

test('an unknown field is reported with the file, its path and its value', async (t) => {
  const file = await configFile(t, 'server: 10.0.0.1:15010\nredirect:\n  backend: iptables\n  outbondPort: 15001\n');
  const error = await loadError(t, loadAgentConfig(file));
  t.is(error.issues.length, 1);
  t.like(error.issues[0], { code: 'unknown-field', file, path: 'redirect.outbondPort', value: 15001 });
  t.is(error.message, `${file}, redirect.outbondPort: unknown field "outbondPort" (got 15001)`);
});

test('a value of the wrong type or out of range is reported with its path and value', async (t) => {
  const file = await configFile(t, 'server: 10.0.0.1:15010\nredirect: { inboundPort: "15006" }\nworkloads:\n  - { name: web, uid: -1 }\nadmin: localhost\n');
  const error = await loadError(t, loadAgentConfig(file));
  const byPath = new Map(error.issues.map((issue) => [issue.path, issue]));
  t.like(byPath.get('redirect.inboundPort'), { code: 'invalid-type', file, value: '15006' });
  t.regex(byPath.get('redirect.inboundPort')!.message, /expected number, found string/);
  t.like(byPath.get('workloads[0].uid'), { file, value: -1 });
  t.like(byPath.get('admin'), { file, value: 'localhost' });
  t.regex(error.message, new RegExp(`${file}, admin: expected host:port`));
});

test('YAML syntax errors name the file and the line', async (t) => {
  const file = await configFile(t, 'server: 10.0.0.1:15010\nredirect: [unclosed\n');
  const error = await loadError(t, loadAgentConfig(file));
  t.like(error.issues[0], { code: 'invalid-yaml', file });
  t.regex(error.message, /line \d+/);
});

test('fields left out take their defaults', async (t) => {
  const file = await configFile(t, 'server: 10.0.0.1:15010\n');
  const config = await loadAgentConfig(file);
  t.deepEqual(config, {
    server: '10.0.0.1:15010',
    node: os.hostname(),
    namespace: 'default',
    trustDomain: 'cluster.local',
    stateDir: '/var/lib/mesh',
    workloads: [],
    redirect: {
      enabled: true,
      backend: 'auto',
      outboundPort: 15001,
      inboundPort: 15006,
      excludeOutboundPorts: [],
      excludeOutboundCidrs: [],
      inboundPorts: '*',
      excludeInboundPorts: [],
      ipv6: false,
    },
    admin: '127.0.0.1:15000',
    readiness: ':15021',
    logLevel: 'info',
  });
  const partial = await loadAgentConfig(await configFile(t, 'server: 10.0.0.1:15010\nredirect: { backend: iptables }\nworkloads: [{ name: web }]\n'));
  t.like(partial.redirect, { backend: 'iptables', outboundPort: 15001, enabled: true });
  t.deepEqual(partial.workloads, [{ name: 'web', serviceAccount: 'default', ports: {} }]);
});

test('flags override file values field by field, nested ones too', async (t) => {
  const file = await configFile(t, 'server: 10.0.0.1:15010\nnode: host-a\nlogLevel: warn\nredirect: { backend: iptables, excludeOutboundPorts: [22] }\n');
  const config = await loadAgentConfig(file, { server: '10.0.0.2:15010', logLevel: 'debug', redirect: { backend: 'nftables', outboundPort: undefined } });
  t.is(config.server, '10.0.0.2:15010');
  t.is(config.logLevel, 'debug');
  t.is(config.node, 'host-a', 'fields without a flag keep the file value');
  t.deepEqual(config.redirect.excludeOutboundPorts, [22], 'siblings of an overridden nested field stay');
  t.is(config.redirect.backend, 'nftables');
  t.is(config.redirect.outboundPort, 15001, 'an unset flag does not erase anything');
  t.deepEqual(mergeAgentConfig({ redirect: { ipv6: true }, workloads: [{ name: 'a' }] }, { workloads: [{ name: 'b' }] }), { redirect: { ipv6: true }, workloads: [{ name: 'b' }] });
});

test('an invalid flag value is reported as coming from the flags, not the file', async (t) => {
  const file = await configFile(t, 'server: 10.0.0.1:15010\n');
  const error = await loadError(t, loadAgentConfig(file, { redirect: { backend: 'ipfw' as 'auto' } }));
  t.like(error.issues[0], { file: FLAGS_SOURCE, path: 'redirect.backend', value: 'ipfw' });
});

test('without a file, flags alone are enough when they give the server', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'agent-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const missing = path.join(dir, 'agent.yaml');
  const config = await loadAgentConfig(missing, { server: '127.0.0.1:15010', node: 'host-b' });
  t.like(config, { server: '127.0.0.1:15010', node: 'host-b', namespace: 'default', stateDir: '/var/lib/mesh' });

  const error = await loadError(t, loadAgentConfig(missing, { node: 'host-b' }));
  t.like(error.issues[0], { code: 'missing-field', file: missing, path: 'server' });
  t.regex(error.message, /--server/);
});

test('two workloads with one name are refused', async (t) => {
  const file = await configFile(t, 'server: 10.0.0.1:15010\nworkloads: [{ name: web }, { name: web }]\n');
  const error = await loadError(t, loadAgentConfig(file));
  t.like(error.issues[0], { path: 'workloads[1].name', value: 'web' });
});
