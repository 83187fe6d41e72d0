// The X.509 library as the CA uses it: @peculiar/x509 bound to Node's WebCrypto.
// Every CA module imports x509 from here so the provider is set before the first certificate call.
import './reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

// @peculiar/x509 has no default provider under Node; without this every generate/verify call throws.
x509.cryptoProvider.set(webcrypto);

export { x509 };
// The project compiles without the DOM lib, so WebCrypto's types come from Node's namespace.
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type SignatureAlgorithm = webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams;
export type KeyImportAlgorithm = webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
export const subtle = webcrypto.subtle;

/** ECDSA P-256 with SHA-256: the only key type and signature the mesh issues and accepts. */
export const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
