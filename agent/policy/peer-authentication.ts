// PeerAuthentication on the agent: from virtualInbound's chains, the mTLS mode of each local
// workload port and so whether plaintext on :15006 may reach it (STRICT: no; PERMISSIVE and
// DISABLE: yes). mTLS through the :15008 tunnel is admitted in every mode.
//
// API:
//   const modes = PeerAuthenticationTable.fromListener(virtualInbound);
//   modes.admitsPlaintext(address, port) -> boolean;  modes.modeOf(address, port) -> MtlsMode
import { structToJson } from '../../lib/xds/struct';
import type { Decoded } from '../routing/request-matchers';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** Istio's default when nothing is configured. */
export const DEFAULT_MTLS_MODE: MtlsMode = 'PERMISSIVE';

/** The `mesh` filter metadata the server puts on each inbound chain (kind, protocol, mtlsMode, ...). */
export function meshMetadata(chain: Decoded): Record<string, unknown> {
  return structToJson(((chain.metadata as Decoded | undefined)?.filter_metadata as Decoded | undefined)?.mesh);
}

function isMode(value: unknown): value is MtlsMode {
  return value === 'STRICT' || value === 'PERMISSIVE' || value === 'DISABLE';
}

export class PeerAuthenticationTable {
  /** `address|port` for chains bound to a workload address, `|port` for any address. */
  private readonly modes = new Map<string, MtlsMode>();

  private constructor() {}

  static fromListener(listener: Decoded | undefined): PeerAuthenticationTable {
    const table = new PeerAuthenticationTable();
    const chains = Array.isArray(listener?.filter_chains) ? (listener.filter_chains as Decoded[]) : [];
    for (const chain of chains) {
      const match = (chain.filter_chain_match ?? {}) as Decoded;
      const port = Number((match.destination_port as Decoded | undefined)?.value);
      if (!Number.isInteger(port)) continue;
      const metadata = meshMetadata(chain);
      // The refusal chain of a STRICT port carries the same mode; either chain may come first.
      let mode: MtlsMode = isMode(metadata.mtlsMode) ? metadata.mtlsMode : DEFAULT_MTLS_MODE;
      if (match.transport_protocol === 'tls' || metadata.kind === 'plaintext-refused') mode = 'STRICT';
      const ranges = Array.isArray(match.prefix_ranges) ? (match.prefix_ranges as Decoded[]) : [];
      if (ranges.length === 0) table.modes.set(`|${port}`, mode);
      for (const range of ranges) if (typeof range.address_prefix === 'string') table.modes.set(`${range.address_prefix}|${port}`, mode);
    }
    return table;
  }

  /** The mode for a workload address and port; PERMISSIVE for ports the config does not name. */
  modeOf(address: string, port: number): MtlsMode {
    return this.modes.get(`${address}|${port}`) ?? this.modes.get(`|${port}`) ?? DEFAULT_MTLS_MODE;
  }

  /** Whether a plaintext connection (on :15006) to this workload port is admitted. */
  admitsPlaintext(address: string, port: number): boolean {
    return this.modeOf(address, port) !== 'STRICT';
  }
}
