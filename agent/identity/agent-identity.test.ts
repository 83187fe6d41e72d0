// agent.yaml's `tls` is checked with errors that name the field, and a missing CA file stops the
// agent at start with the file named; without `tls` the agent has no identity (plaintext, as before).
import test from 'ava';
import pino from 'pino';
import { AgentConfigError, parseAgentConfig } from '../config/agent-config';
import { AgentIdentity } from './agent-identity';

const logger = pino({ level: 'silent' });

test('tls fields are validated with the path and what is wrong', (t) => {
  const both = t.throws(() => parseAgentConfig({ server: 'cp:15012', tls: { caFile: '/etc/mesh/root.pem', joinToken: 'x', joinTokenFile: '/etc/mesh/token' } }, '/etc/mesh/agent.yaml'), { instanceOf: AgentConfigError });
  t.regex(both!.message, /tls\.joinTokenFile.*joinToken or joinTokenFile, not both/);
  const relative = t.throws(() => parseAgentConfig({ server: 'cp:15012', tls: { caFile: 'root.pem' } }, '/etc/mesh/agent.yaml'), { instanceOf: AgentConfigError });
  t.regex(relative!.message, /tls\.caFile.*absolute path/);
  const unknown = t.throws(() => parseAgentConfig({ server: 'cp:15012', tls: { caFile: '/r.pem', token: 'x' } }, '/etc/mesh/agent.yaml'), { instanceOf: AgentConfigError });
  t.regex(unknown!.message, /token/);
  const identity = t.throws(() => parseAgentConfig({ server: 'cp:15012', tls: { caFile: '/r.pem', serverIdentity: 'mesh-server' } }, '/etc/mesh/agent.yaml'), { instanceOf: AgentConfigError });
  t.regex(identity!.message, /tls\.serverIdentity.*SPIFFE ID/);
});

test('a missing CA file is a start error naming it; no tls means no identity', async (t) => {
  const config = parseAgentConfig({ server: 'cp:15012', node: 'host-a', tls: { caFile: '/nonexistent/root.pem' } }, 'test');
  await t.throwsAsync(AgentIdentity.create(config, logger), { message: /tls\.caFile \/nonexistent\/root\.pem: ENOENT/ });
  t.is(await AgentIdentity.create(parseAgentConfig({ server: 'cp:15010' }, 'test'), logger), undefined);
});
