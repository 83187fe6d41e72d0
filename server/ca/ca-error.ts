// Errors of the certificate authority: a stable code callers and metrics can switch on, and a
// message that tells the operator (or the agent's log) what was wrong and what to do.

export type CaErrorCode =
  // CSR signing
  | 'csr-malformed'
  | 'csr-too-large'
  | 'csr-bad-signature'
  | 'csr-unsupported-key'
  | 'csr-bad-subject'
  | 'csr-bad-san'
  | 'csr-wrong-trust-domain'
  | 'csr-not-entitled'
  // CA key material
  | 'ca-material-invalid'
  // join tokens
  | 'token-malformed'
  | 'token-bad-signature'
  | 'token-expired'
  | 'token-not-yet-valid'
  | 'token-replayed'
  | 'token-replay-store-full';

export class CaError extends Error {
  override readonly name = 'CaError';
  constructor(readonly code: CaErrorCode, message: string) {
    super(message);
  }
}
