// Root rotation through a running mesh-server, with a real agent identity renewing over mTLS at each
// step: trust the new root, sign with it, retire the old one. The agent never loses its channel,
// and its trust bundle follows each step.
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { promises as fs, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { IdentityManager } from '../../agent/identity/identity-manager';
import { MeshServer } from '../mesh-server';
import { writeTestCa } from './testing';

const logger = pino({ level: 'silent' });
const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage';

test('add a root, switch signing to it, retire the old one: the agent renews over mTLS at every step and ends trusting only the new root', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-root-rotation-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const oldCa = await writeTestCa(path.join(dir, 'old'), { intermediate: false, name: 'old' });
  const newCa = await writeTestCa(path.join(dir, 'new'), { intermediate: false, name: 'new' });
  const signing = { certFile: path.join(dir, 'signing-cert.pem'), keyFile: path.join(dir, 'signing-key.pem') };
  const extraRoot = path.join(dir, 'extra-root.pem');
  const useSigning = async (ca: typeof oldCa) => {
    await fs.copyFile(ca.certFile, signing.certFile);
    await fs.copyFile(ca.keyFile, signing.keyFile);
  };
  await useSigning(oldCa);
  await fs.writeFile(extraRoot, oldCa.rootCertPem);

  const server = new MeshServer({
    logger, configDir: path.join(__dirname, '..', '..', 'examples'), adminAddress: '127.0.0.1:0',
    secure: { address: '127.0.0.1:0', caStateDir: path.join(dir, 'state'), pluggedIn: signing, additionalRootFiles: [extraRoot] },
  });
  const addresses = await server.start();
  t.teardown(() => server.stop());
  const manager = new IdentityManager({
    server: `127.0.0.1:${addresses.secureXds!.port}`, trustDomain: 'cluster.local', node: 'host-a', workloadIds: [PRODUCTPAGE],
    stateDir: path.join(dir, 'agent'), bootstrapTrustPem: server.trustBundlePem()!, serverSpiffeId: 'spiffe://cluster.local/ns/istio-system/sa/mesh-server',
    joinToken: async () => server.issueJoinToken('host-a'), logger, retryInitialMs: 100, retryMaxMs: 500,
  });
  t.teardown(() => manager.stop());
  await manager.start();
  const bundles: string[] = [];
  manager.on('bundle', (pem) => bundles.push(pem));
  const rootsOf = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----/g)!.length;
  const issuerOf = (id: string) => new X509Certificate(manager.certificate(id)!.certificateChainPem).issuer;
  const renewAll = async () => {
    const failures = manager.counters.renewalFailures;
    await manager.renewNow(manager.nodeId);
    await manager.renewNow(PRODUCTPAGE);
    t.is(manager.counters.renewalFailures, failures, 'renewals over mTLS kept working');
  };
  t.regex(issuerOf(PRODUCTPAGE), /old root/);

  // 1. Trust the new root too.
  await fs.writeFile(extraRoot, newCa.rootCertPem);
  await server.reload();
  await renewAll();
  t.is(rootsOf(manager.trustBundlePem()!), 2);
  t.regex(issuerOf(PRODUCTPAGE), /old root/);

  // 2. Sign with the new root; the old one stays trusted for the leaves still out there.
  await useSigning(newCa);
  await fs.writeFile(extraRoot, oldCa.rootCertPem);
  await server.reload();
  await renewAll();
  t.regex(issuerOf(PRODUCTPAGE), /new root/);
  t.regex(issuerOf(manager.nodeId), /new root/);
  t.is(rootsOf(manager.trustBundlePem()!), 2);

  // 3. Retire the old root.
  await fs.writeFile(extraRoot, newCa.rootCertPem);
  await server.reload();
  await renewAll();
  t.is(rootsOf(manager.trustBundlePem()!), 1);
  t.is(new X509Certificate(manager.trustBundlePem()!).subject, new X509Certificate(newCa.rootCertPem).subject);
  t.true(bundles.length >= 2, 'bundle changes were announced');
});
