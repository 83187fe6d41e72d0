// The CA over real gRPC and TLS, from the attacker's side: a host asking for another workload's
// identity, bad CSRs, bad, expired and replayed join tokens, certificates from another CA or tampered
// with: each refused with the right status and a message naming what is wrong; the honest path works.
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { promises as fs, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { AUTHORIZATION_METADATA, createCertificateServiceClient, type CertificateServiceClient, type CreateCertificateResponse } from '../../lib/ca/ca-service';
import { CertificateSource } from '../../lib/ca/certificate-source';
import { createKeyAndCsr } from '../../agent/identity/key-and-csr';
import { loadCaKeys, type CaKeys } from './ca-keys';
import { CertificateService } from './certificate-service';
import { JoinTokens } from './join-token';
import { ServingIdentity } from './serving-identity';
import { generateKeys, makeCsr, modelWith, uriSan } from './testing';

const TD = 'cluster.local';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DB = 'spiffe://cluster.local/ns/shop/sa/db';
const NODE_A = 'spiffe://cluster.local/node/host-a';
const model = modelWith(TD, [
  { namespace: 'shop', hostname: 'web.shop', node: 'host-a', serviceAccount: 'web' },
  { namespace: 'shop', hostname: 'db.shop', node: 'host-b', serviceAccount: 'db' },
]);
const logger = pino({ level: 'silent' });

interface Ca {
  keys: CaKeys;
  tokens: JoinTokens;
  target: string;
  server: grpc.Server;
}

async function startCa(t: { teardown(fn: () => unknown): void }, options: { trustPem?: (keys: CaKeys) => string } = {}): Promise<Ca> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-svc-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const keys = await loadCaKeys({ trustDomain: TD, stateDir: dir });
  const tokens = new JoinTokens(Buffer.alloc(32, 7));
  const server = new grpc.Server();
  new CertificateService({ trustDomain: TD, keys: () => keys, tokens, model: () => model, logger }).bind(server);
  const serving = new ServingIdentity({ keys: () => keys, names: { spiffeId: 'spiffe://cluster.local/ns/istio-system/sa/mesh-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, logger });
  serving.renew();
  t.teardown(() => serving.stop());
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0',
    grpc.experimental.createCertificateProviderServerCredentials(serving.source, serving.source, false), (e, p) => (e ? reject(e) : resolve(p))));
  t.teardown(() => server.forceShutdown());
  return { keys, tokens, target: `127.0.0.1:${port}`, server };
}

function tlsClient(ca: Ca, t: { teardown(fn: () => unknown): void }, identity?: { chain: string; key: string }): CertificateServiceClient {
  const credentials = grpc.credentials.createSsl(Buffer.from(ca.keys.trustBundle.pem),
    identity ? Buffer.from(identity.key) : null, identity ? Buffer.from(identity.chain) : null);
  const client = createCertificateServiceClient(ca.target, credentials);
  t.teardown(() => client.close());
  return client;
}

function call(client: CertificateServiceClient, csr: string, options: { token?: string; ttl?: number } = {}): Promise<CreateCertificateResponse> {
  const metadata = new grpc.Metadata();
  if (options.token) metadata.set(AUTHORIZATION_METADATA, `Bearer ${options.token}`);
  return new Promise((resolve, reject) => client.CreateCertificate({ csr, validity_duration: String(options.ttl ?? 0) }, metadata, { deadline: Date.now() + 20_000 },
    (error, response) => (error ? reject(error) : resolve(response!))));
}

async function refused(t: { is(a: unknown, b: unknown, m?: string): void; regex(s: string, r: RegExp): void; fail(m: string): void }, promise: Promise<unknown>, code: grpc.status, message: RegExp): Promise<void> {
  try {
    await promise;
    t.fail('expected the call to be refused');
  } catch (error) {
    const e = error as grpc.ServiceError;
    t.is(e.code, code, `${grpc.status[e.code]}: ${e.details}`);
    t.regex(e.details, message);
  }
}

/** A node certificate obtained the honest way: a join token for host-a. */
async function nodeIdentity(ca: Ca, t: { teardown(fn: () => unknown): void }, node = 'host-a'): Promise<{ chain: string; key: string }> {
  const { csrPem, privateKeyPem } = await createKeyAndCsr(`spiffe://cluster.local/node/${node}`);
  const response = await call(tlsClient(ca, t), csrPem, { token: ca.tokens.issue(node) });
  return { chain: response.cert_chain.slice(0, -1).join('\n'), key: privateKeyPem };
}

test('a join token gets the node certificate, and the node certificate gets the workloads the registry places on the node', async (t) => {
  const ca = await startCa(t);
  const { csrPem, privateKeyPem } = await createKeyAndCsr(NODE_A);
  const first = await call(tlsClient(ca, t), csrPem, { token: ca.tokens.issue('host-a') });
  const leaf = new X509Certificate(first.cert_chain[0]!);
  t.is(leaf.subjectAltName, `URI:${NODE_A}`);
  t.true(leaf.verify(new X509Certificate(ca.keys.trustBundle.pem).publicKey));
  t.is(first.cert_chain.length, 2, 'leaf and root');
  t.deepEqual(first.trust_bundle.map((p) => p.trim()), [ca.keys.root.toString('pem').trim()]);
  const node = { chain: first.cert_chain[0]!, key: privateKeyPem };
  const web = await createKeyAndCsr(WEB);
  const second = await call(tlsClient(ca, t, node), web.csrPem, { ttl: 3600 });
  const webLeaf = new X509Certificate(second.cert_chain[0]!);
  t.is(webLeaf.subjectAltName, `URI:${WEB}`);
  const lifetime = new Date(webLeaf.validTo).getTime() - Date.now();
  t.true(lifetime <= 3600_000 && lifetime > 3500_000, `lifetime ${lifetime}`);
});

test("a host asking for another host's workload is refused with PERMISSION_DENIED naming the identity and the node", async (t) => {
  const ca = await startCa(t);
  const node = await nodeIdentity(ca, t);
  await refused(t, call(tlsClient(ca, t, node), (await createKeyAndCsr(DB)).csrPem), grpc.status.PERMISSION_DENIED, /node "host-a" runs no workload with identity spiffe:\/\/cluster\.local\/ns\/shop\/sa\/db/);
  // Another node's identity is no better.
  await refused(t, call(tlsClient(ca, t, node), (await createKeyAndCsr('spiffe://cluster.local/node/host-b')).csrPem), grpc.status.PERMISSION_DENIED, /host-b/);
});

test('a join token grants only the node identity: a workload CSR with a token is refused', async (t) => {
  const ca = await startCa(t);
  await refused(t, call(tlsClient(ca, t), (await createKeyAndCsr(WEB)).csrPem, { token: ca.tokens.issue('host-a') }),
    grpc.status.PERMISSION_DENIED, /a join token grants only the node identity spiffe:\/\/cluster\.local\/node\/host-a, not spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web/);
});

test('bad CSRs are refused with INVALID_ARGUMENT naming the problem', async (t) => {
  const ca = await startCa(t);
  const node = await nodeIdentity(ca, t);
  const client = tlsClient(ca, t, node);
  await refused(t, call(client, await makeCsr({ sans: [...uriSan(WEB), { type: 'dns', value: 'web.shop' }] })), grpc.status.INVALID_ARGUMENT, /exactly one URI SAN .* got URI, DNS/);
  await refused(t, call(client, await makeCsr({ sans: uriSan(WEB), extraSanExtensions: [uriSan(WEB)] })), grpc.status.INVALID_ARGUMENT, /exactly one subjectAltName extension, got 2/);
  await refused(t, call(client, await makeCsr({ keys: await generateKeys('rsa'), sans: uriSan(WEB) })), grpc.status.INVALID_ARGUMENT, /ECDSA P-256; RSA keys/);
  await refused(t, call(client, 'garbage'), grpc.status.INVALID_ARGUMENT, /not one PEM "CERTIFICATE REQUEST" block/);
  await refused(t, call(client, '-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----'), grpc.status.INVALID_ARGUMENT, /not a valid PKCS#10 request/);
  await refused(t, call(client, (await createKeyAndCsr(WEB)).csrPem, { ttl: 365 * 24 * 3600 }), grpc.status.INVALID_ARGUMENT, /validity_duration 31536000s exceeds the maximum/);
});

test('missing, forged, expired and replayed join tokens are refused with UNAUTHENTICATED', async (t) => {
  const ca = await startCa(t);
  const csr = (await createKeyAndCsr(NODE_A)).csrPem;
  const client = tlsClient(ca, t);
  await refused(t, call(client, csr), grpc.status.UNAUTHENTICATED, /no client certificate issued by this mesh and no join token/);
  const other = new JoinTokens(Buffer.alloc(32, 9)).issue('host-a');
  await refused(t, call(client, csr, { token: other }), grpc.status.UNAUTHENTICATED, /not issued by this mesh/);
  const expired = ca.tokens.issue('host-a', { now: new Date(Date.now() - 2 * 3600_000), ttlMs: 3600_000 });
  await refused(t, call(client, csr, { token: expired }), grpc.status.UNAUTHENTICATED, /join token expired at/);
  const token = ca.tokens.issue('host-a');
  await call(client, csr, { token });
  await refused(t, call(client, csr, { token }), grpc.status.UNAUTHENTICATED, /join token for node "host-a" was already used/);
});

test('a certificate from another CA, a tampered one, or a workload certificate does not authenticate a node', async (t) => {
  const ca = await startCa(t);
  const foreign = await startCa(t);
  const foreignNode = await nodeIdentity(foreign, t);
  const web = await createKeyAndCsr(WEB);
  // The foreign certificate fails verification, so the call arrives as if it had none.
  await refused(t, call(tlsClient(ca, t, foreignNode), web.csrPem), grpc.status.UNAUTHENTICATED, /no client certificate issued by this mesh/);

  const honest = await nodeIdentity(ca, t);
  const der = Buffer.from(new X509Certificate(honest.chain).raw);
  // Flip one byte inside the SAN: "host-a" becomes "host-b"; the signature no longer matches.
  const at = der.indexOf(Buffer.from('node/host-a')) + 'node/host-'.length;
  der[at] = 'b'.charCodeAt(0);
  const tampered = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').trim()}\n-----END CERTIFICATE-----\n`;
  const attempt = call(tlsClient(ca, t, { chain: tampered, key: honest.key }), (await createKeyAndCsr('spiffe://cluster.local/node/host-b')).csrPem);
  // OpenSSL aborts the handshake on a signature that does not verify, so the call never reaches the CA.
  const error = await t.throwsAsync(attempt) as grpc.ServiceError;
  t.true(error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.UNAUTHENTICATED, `${grpc.status[error.code]}: ${error.details}`);

  const webResponse = await call(tlsClient(ca, t, honest), web.csrPem);
  const workload = { chain: webResponse.cert_chain[0]!, key: web.privateKeyPem };
  await refused(t, call(tlsClient(ca, t, workload), (await createKeyAndCsr(WEB)).csrPem), grpc.status.PERMISSION_DENIED, /spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web is not a node identity/);
});

test('the certificate source hands its latest material to listeners, late ones included', async (t) => {
  const source = new CertificateSource();
  let seen = 0;
  source.addCaCertificateListener(() => seen++);
  t.is(seen, 0, 'no update before there is material');
  source.update({ certificateChainPem: 'c', privateKeyPem: 'k', trustBundlePem: 'b' });
  t.is(seen, 1);
  const identity = await new Promise<string | undefined>((resolve) => source.addIdentityCertificateListener((update) => resolve(update?.certificate.toString())));
  t.is(identity, 'c');
});
