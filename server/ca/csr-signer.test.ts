// Tests of CSR signing: an agent gets a correct X.509-SVID for a workload it runs, and every CSR an
// attacker could send (other identities, other names, weak or foreign keys, forged or junk input) is refused.
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { promises as fs, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CaError, type CaErrorCode } from './ca-error';
import { loadCaKeys, type CaKeys } from './ca-keys';
import { CLOCK_SKEW_MS, DEFAULT_LEAF_TTL_MS, MAX_CSR_BYTES, signCsr, type SignRequest } from './csr-signer';
import { entitlementsFromModel } from './entitlements';
import { generateKeys, makeCsr, modelWith, uriSan, writeTestCa } from './testing';
import { x509 } from '../../lib/ca/x509';

const TD = 'cluster.local';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DB = 'spiffe://cluster.local/ns/shop/sa/db';
const model = modelWith(TD, [
  { namespace: 'shop', hostname: 'web.shop', node: 'host-a', serviceAccount: 'web' },
  { namespace: 'shop', hostname: 'db.shop', node: 'host-b', serviceAccount: 'db' },
]);
const now = new Date('2026-06-01T12:00:00Z');
const asHostA: SignRequest = { requester: { node: 'host-a' }, allowedIdentities: entitlementsFromModel(model), now };

let keys: CaKeys;
test.before(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-'));
  keys = await loadCaKeys({ trustDomain: TD, stateDir: dir, now });
  await fs.rm(dir, { recursive: true, force: true });
});

test('a CSR for an identity the node runs is signed into a leaf that verifies against the root', async (t) => {
  const signed = signCsr(keys, TD, await makeCsr({ sans: uriSan(WEB) }), asHostA);
  const leaf = new X509Certificate(signed.certificatePem);
  const root = new X509Certificate(keys.trustBundle.pem);
  t.true(leaf.verify(root.publicKey));
  t.true(leaf.checkIssued(root));
  t.is(leaf.subjectAltName, `URI:${WEB}`);
  t.falsy(leaf.subject, 'the identity is in the SAN only');
  t.false(leaf.ca);
  t.is(signed.spiffeId, WEB);
  t.deepEqual(signed.chainPem, []);
  t.is(signed.notAfter.getTime(), now.getTime() + DEFAULT_LEAF_TTL_MS);
  t.is(new Date(leaf.validTo).getTime(), now.getTime() + DEFAULT_LEAF_TTL_MS);
  t.is(new Date(leaf.validFrom).getTime(), now.getTime() - CLOCK_SKEW_MS);
  t.is(leaf.serialNumber.replace(/^0+/, '').toLowerCase(), signed.serialNumber.replace(/^0+/, ''));
  t.true(signed.serialNumber.length === 32);
});

test('the leaf carries exactly the usages of a mesh workload certificate', async (t) => {
  const signed = signCsr(keys, TD, await makeCsr({ sans: uriSan(WEB) }), asHostA);
  const leaf = new x509.X509Certificate(signed.certificatePem);
  const constraints = leaf.getExtension(x509.BasicConstraintsExtension)!;
  t.false(constraints.ca);
  t.true(constraints.critical);
  const usage = leaf.getExtension(x509.KeyUsagesExtension)!;
  t.is(usage.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
  t.true(usage.critical);
  t.deepEqual([...leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
  t.deepEqual(leaf.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON(), [{ type: 'url', value: WEB }]);
  const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId;
  t.is(aki, keys.signingCertificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
  t.truthy(leaf.getExtension(x509.SubjectKeyIdentifierExtension));
  t.is(leaf.extensions.length, 6);
});

test('two leaves for the same CSR get different random serials', async (t) => {
  const csr = await makeCsr({ sans: uriSan(WEB) });
  const a = signCsr(keys, TD, csr, asHostA);
  const b = signCsr(keys, TD, csr, asHostA);
  t.not(a.serialNumber, b.serialNumber);
});

test('a DER CSR is accepted like its PEM form', async (t) => {
  const pem = await makeCsr({ sans: uriSan(WEB) });
  const der = new x509.Pkcs10CertificateRequest(pem).rawData;
  t.is((signCsr(keys, TD, new Uint8Array(der), asHostA)).spiffeId, WEB);
});

test('a requested TTL is honoured but never beyond the signing certificate', async (t) => {
  const short = signCsr(keys, TD, await makeCsr({ sans: uriSan(WEB) }), { ...asHostA, ttlMs: 3600_000 });
  t.is(short.notAfter.getTime(), now.getTime() + 3600_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const soonExpiring = await loadCaKeys({ trustDomain: TD, stateDir: dir, pluggedIn: await writeTestCa(dir, { intermediate: true, notAfter: new Date(Date.now() + 2 * 3600_000) }) });
  const capped = signCsr(soonExpiring, TD, await makeCsr({ sans: uriSan(WEB) }), { ...asHostA, now: new Date() });
  t.is(capped.notAfter.getTime(), soonExpiring.signingCertificate.notAfter.getTime());
  t.is(new Date(new X509Certificate(capped.certificatePem).validTo).getTime(), soonExpiring.signingCertificate.notAfter.getTime());
});

async function refused(t: import('ava').ExecutionContext, csr: string | Uint8Array, code: CaErrorCode, request: SignRequest = asHostA): Promise<void> {
  const error = t.throws(() => signCsr(keys, TD, csr, request), { instanceOf: CaError });
  t.is(error?.code, code, error?.message);
  t.true((error?.message.length ?? 0) > 20);
}

test("a node asking for another node's workload identity is refused", async (t) => {
  await refused(t, await makeCsr({ sans: uriSan(DB) }), 'csr-not-entitled');
});

test('a node the registry does not know gets nothing', async (t) => {
  await refused(t, await makeCsr({ sans: uriSan(WEB) }), 'csr-not-entitled', { ...asHostA, requester: { node: 'intruder' } });
});

test('an identity in another trust domain is refused', async (t) => {
  await refused(t, await makeCsr({ sans: uriSan('spiffe://evil.example/ns/shop/sa/web') }), 'csr-wrong-trust-domain');
});

test('two URI SANs, a URI plus a DNS SAN, or two SAN extensions are refused', async (t) => {
  await refused(t, await makeCsr({ sans: [...uriSan(WEB), ...uriSan(DB)] }), 'csr-bad-san');
  await refused(t, await makeCsr({ sans: [...uriSan(WEB), { type: 'dns', value: 'db.shop' }] }), 'csr-bad-san');
  await refused(t, await makeCsr({ sans: uriSan(WEB), extraSanExtensions: [uriSan(DB)] }), 'csr-bad-san');
});

test('DNS, IP and email SANs are refused', async (t) => {
  await refused(t, await makeCsr({ sans: [{ type: 'dns', value: 'web.shop.svc' }] }), 'csr-bad-san');
  await refused(t, await makeCsr({ sans: [{ type: 'ip', value: '10.0.0.1' }] }), 'csr-bad-san');
  await refused(t, await makeCsr({ sans: [{ type: 'email', value: 'web@shop' }] }), 'csr-bad-san');
});

test('a CSR without a SAN or with a URI that is not a valid workload SPIFFE ID is refused', async (t) => {
  await refused(t, await makeCsr({}), 'csr-bad-san');
  await refused(t, await makeCsr({ sans: uriSan('spiffe://cluster.local/ns/shop/sa/../../ns/kube/sa/admin') }), 'csr-bad-san');
  await refused(t, await makeCsr({ sans: uriSan('https://cluster.local/ns/shop/sa/web') }), 'csr-bad-san');
  // Neither a workload's ns/NAMESPACE/sa/SA nor a node's node/NODE path.
  for (const id of ['spiffe://cluster.local/node/host-a/extra', 'spiffe://cluster.local/ns/shop', 'spiffe://cluster.local', 'spiffe://cluster.local/sa/web/ns/shop']) {
    await refused(t, await makeCsr({ sans: uriSan(id) }), 'csr-bad-san');
  }
});

test('a subject that tries to carry a name is refused', async (t) => {
  await refused(t, await makeCsr({ sans: uriSan(WEB), subject: 'CN=db.shop' }), 'csr-bad-subject');
  await refused(t, await makeCsr({ sans: uriSan(WEB), subject: `CN=${DB}` }), 'csr-bad-subject');
});

test('RSA and P-384 keys are refused', async (t) => {
  await refused(t, await makeCsr({ sans: uriSan(WEB), keys: await generateKeys('rsa') }), 'csr-unsupported-key');
  await refused(t, await makeCsr({ sans: uriSan(WEB), keys: await generateKeys('p384') }), 'csr-unsupported-key');
});

test('a CSR altered after signing (its SAN swapped for an entitled one) fails the signature check', async (t) => {
  // Signed for an identity nobody runs, then edited in place to host-a's; both URIs have the same length.
  const other = 'spiffe://cluster.local/ns/shop/sa/xyz';
  const der = Buffer.from(new x509.Pkcs10CertificateRequest(await makeCsr({ sans: uriSan(other) })).rawData);
  const at = der.indexOf(Buffer.from('sa/xyz'));
  der.write('sa/web', at);
  t.true(der.includes(Buffer.from(WEB)));
  await refused(t, new Uint8Array(der), 'csr-bad-signature');
});

test('garbage, a PEM of junk, a certificate instead of a CSR and an oversized input are refused', async (t) => {
  await refused(t, 'hello', 'csr-malformed');
  await refused(t, '-----BEGIN CERTIFICATE REQUEST-----\nAAAAAAAA\n-----END CERTIFICATE REQUEST-----\n', 'csr-malformed');
  await refused(t, new Uint8Array([0x30, 0x82, 0xff, 0xff, 0x01]), 'csr-malformed');
  await refused(t, keys.trustBundle.pem, 'csr-malformed');
  const big = await makeCsr({ sans: uriSan(WEB) });
  await refused(t, big + ' '.repeat(MAX_CSR_BYTES), 'csr-too-large');
  await refused(t, new Uint8Array(MAX_CSR_BYTES + 1), 'csr-too-large');
});

test('a valid CSR with bytes appended, or re-encoded with a BER indefinite length, is refused', async (t) => {
  const der = Buffer.from(new x509.Pkcs10CertificateRequest(await makeCsr({ sans: uriSan(WEB) })).rawData);
  await refused(t, new Uint8Array(Buffer.concat([der, Buffer.from([0, 0])])), 'csr-malformed');
  const headerLength = der[1]! < 0x80 ? 2 : 2 + (der[1]! & 0x7f);
  const indefinite = Buffer.concat([Buffer.from([0x30, 0x80]), der.subarray(headerLength), Buffer.from([0, 0])]);
  await refused(t, new Uint8Array(indefinite), 'csr-malformed');
});
