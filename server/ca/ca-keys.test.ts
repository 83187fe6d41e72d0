// Tests of the CA's signing material: a generated root persists privately and is reused, an
// organisation's root or intermediate is checked before use, and the trust bundle carries rotated roots.
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { promises as fs, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CaError } from './ca-error';
import { GENERATED_ROOT_CERT_FILE, GENERATED_ROOT_KEY_FILE, loadCaKeys } from './ca-keys';
import { signCsr } from './csr-signer';
import { makeCsr, uriSan, writeTestCa } from './testing';

const TD = 'cluster.local';
const ID = 'spiffe://cluster.local/ns/shop/sa/web';

function tempDir(t: { teardown(fn: () => Promise<void>): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function issue(keys: Awaited<ReturnType<typeof loadCaKeys>>): Promise<X509Certificate> {
  const leaf = signCsr(keys, TD, await makeCsr({ sans: uriSan(ID) }), { requester: { node: 'n' }, allowedIdentities: () => new Set([ID]) });
  return new X509Certificate(leaf.certificatePem);
}

test('a root generated on first start is persisted privately and loaded again on the next start', async (t) => {
  const stateDir = path.join(tempDir(t), 'state');
  const first = await loadCaKeys({ trustDomain: TD, stateDir });
  t.is(first.origin, 'generated');
  t.is((await fs.stat(stateDir)).mode & 0o777, 0o700);
  t.is((await fs.stat(path.join(stateDir, GENERATED_ROOT_KEY_FILE))).mode & 0o777, 0o600);
  t.deepEqual((await fs.readdir(stateDir)).sort(), [GENERATED_ROOT_CERT_FILE, GENERATED_ROOT_KEY_FILE]);

  const second = await loadCaKeys({ trustDomain: TD, stateDir });
  t.is(second.origin, 'loaded');
  t.is(second.root.toString('pem'), first.root.toString('pem'));
  // Same key: a leaf issued after the restart verifies against the root from the first start.
  const root = new X509Certificate(first.trustBundle.pem);
  t.true((await issue(second)).verify(root.publicKey));
  t.true(root.ca);
  t.is(first.chainPem.length, 0);
});

test('the generated root is ECDSA P-256, self-signed and names the trust domain', async (t) => {
  const keys = await loadCaKeys({ trustDomain: TD, stateDir: tempDir(t) });
  const root = new X509Certificate(keys.root.toString('pem'));
  t.is(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.true(root.verify(root.publicKey));
  t.regex(root.subject, /O=cluster\.local/);
});

test('a state dir with a certificate but no key is refused instead of silently replaced', async (t) => {
  const stateDir = tempDir(t);
  await loadCaKeys({ trustDomain: TD, stateDir });
  await fs.rm(path.join(stateDir, GENERATED_ROOT_KEY_FILE));
  const error = await t.throwsAsync(loadCaKeys({ trustDomain: TD, stateDir }), { instanceOf: CaError });
  t.is(error?.code, 'ca-material-invalid');
  t.regex(error!.message, /restore it or remove both/);
});

test('a plugged-in intermediate issues leaves that verify to the root through the chain', async (t) => {
  const dir = tempDir(t);
  const ca = await writeTestCa(dir, { intermediate: true });
  const keys = await loadCaKeys({ trustDomain: TD, stateDir: path.join(dir, 'unused'), pluggedIn: ca });
  t.is(keys.origin, 'plugged-in');
  t.is(keys.chainPem.length, 1);
  const leaf = await issue(keys);
  const intermediate = new X509Certificate(keys.chainPem[0]!);
  const root = new X509Certificate(ca.rootCertPem);
  t.is(new X509Certificate(keys.trustBundle.pem).fingerprint256, root.fingerprint256);
  t.true(leaf.checkIssued(intermediate));
  t.true(leaf.verify(intermediate.publicKey));
  t.true(intermediate.checkIssued(root));
  t.true(intermediate.verify(root.publicKey));
  t.false(leaf.verify(root.publicKey));
});

test('a plugged-in root signs leaves directly', async (t) => {
  const dir = tempDir(t);
  const ca = await writeTestCa(dir, { intermediate: false });
  const keys = await loadCaKeys({ trustDomain: TD, stateDir: dir, pluggedIn: ca });
  t.true((await issue(keys)).verify(new X509Certificate(ca.rootCertPem).publicKey));
});

for (const keyType of ['rsa', 'p384'] as const) {
  test(`an organisation CA with a ${keyType} key signs leaves that verify through its chain`, async (t) => {
    const dir = tempDir(t);
    const ca = await writeTestCa(dir, { intermediate: true, keyType });
    const keys = await loadCaKeys({ trustDomain: TD, stateDir: dir, pluggedIn: ca });
    const leaf = await issue(keys);
    const intermediate = new X509Certificate(keys.chainPem[0]!);
    t.true(leaf.verify(intermediate.publicKey));
    t.true(intermediate.verify(new X509Certificate(ca.rootCertPem).publicKey));
  });
}

test('an intermediate without its chain, a key of another CA and a chain to a foreign root are refused', async (t) => {
  const dir = tempDir(t);
  const ca = await writeTestCa(path.join(dir, 'a'), { intermediate: true });
  const other = await writeTestCa(path.join(dir, 'b'), { intermediate: true });
  const noChain = { certFile: ca.certFile, keyFile: ca.keyFile };
  const wrongKey = { ...ca, keyFile: other.keyFile };
  const foreignRoot = { ...ca, chainFile: other.chainFile! };
  for (const [pluggedIn, message] of [
    [noChain, /not a self-signed root/],
    [wrongKey, /private key does not belong/],
    [foreignRoot, /not signed by the next one/],
  ] as const) {
    const error = await t.throwsAsync(loadCaKeys({ trustDomain: TD, stateDir: dir, pluggedIn }), { instanceOf: CaError });
    t.is(error?.code, 'ca-material-invalid');
    t.regex(error!.message, message);
  }
});

test('an expired CA certificate is refused', async (t) => {
  const dir = tempDir(t);
  const ca = await writeTestCa(dir, { intermediate: false });
  const error = await t.throwsAsync(loadCaKeys({ trustDomain: TD, stateDir: dir, pluggedIn: ca, now: new Date(Date.now() + 2 * 365 * 24 * 3600_000) }), { instanceOf: CaError });
  t.regex(error!.message, /not valid now/);
});

test('during root rotation the bundle holds both roots and leaves of either verify against it', async (t) => {
  const dir = tempDir(t);
  const oldKeys = await loadCaKeys({ trustDomain: TD, stateDir: path.join(dir, 'old') });
  const oldLeaf = await issue(oldKeys);
  const oldRootFile = path.join(dir, 'old-root.pem');
  await fs.writeFile(oldRootFile, oldKeys.trustBundle.pem);
  const ca = await writeTestCa(path.join(dir, 'new'), { intermediate: false });
  const newKeys = await loadCaKeys({ trustDomain: TD, stateDir: dir, pluggedIn: ca, additionalRootFiles: [oldRootFile, ca.certFile] });
  const roots = newKeys.trustBundle.roots.map((r) => new X509Certificate(r.toString('pem')));
  t.is(roots.length, 2, 'the new root listed again is not duplicated');
  t.is(roots[0]!.fingerprint256, new X509Certificate(ca.rootCertPem).fingerprint256);
  t.is(roots[1]!.fingerprint256, new X509Certificate(oldKeys.trustBundle.pem).fingerprint256);
  t.is(newKeys.trustBundle.pem.match(/BEGIN CERTIFICATE/g)!.length, 2);
  const newLeaf = await issue(newKeys);
  t.true(roots.some((r) => oldLeaf.verify(r.publicKey)));
  t.true(roots.some((r) => newLeaf.verify(r.publicKey)));

  const retired = await loadCaKeys({ trustDomain: TD, stateDir: dir, pluggedIn: ca });
  t.is(retired.trustBundle.roots.length, 1);
  t.false(oldLeaf.verify(new X509Certificate(retired.trustBundle.pem).publicKey));
});

test('an additional root that is not a self-signed CA is refused', async (t) => {
  const dir = tempDir(t);
  const keys = await loadCaKeys({ trustDomain: TD, stateDir: dir });
  const leafFile = path.join(dir, 'leaf.pem');
  await fs.writeFile(leafFile, (await issue(keys)).toString());
  const error = await t.throwsAsync(loadCaKeys({ trustDomain: TD, stateDir: dir, additionalRootFiles: [leafFile] }), { instanceOf: CaError });
  t.is(error?.code, 'ca-material-invalid');
});
