// The X.509 library as the CA uses it (loading CA material, generating the root, tests): @peculiar/x509
// bound to Node's WebCrypto. CA modules import x509 from here so the provider is set before first use.
// @peculiar/x509 decorates its ASN.1 classes and needs the Reflect metadata API before it loads.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// @peculiar/x509 has no default provider under Node; without this every generate/verify call throws.
x509.cryptoProvider.set(webcrypto);

export { x509 };
// The project compiles without the DOM lib, so WebCrypto's types come from Node's namespace.
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export const subtle = webcrypto.subtle;

/** ECDSA P-256: the key type of the generated root and of every leaf the mesh issues. */
export const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
