// Per-client, per-type synchronisation state, as /debug/syncz and `meshctl proxy-status` show it
// (the same idea as istioctl proxy-status: what was sent, what was acknowledged, what was refused).

export type XdsShortType = 'LDS' | 'RDS' | 'CDS' | 'EDS';

export interface TypeSyncStatus {
  /** Version of the last response sent on this stream; undefined before the first one. */
  sent?: string;
  /** Version the client last acknowledged. */
  acked?: string;
  /** Nonce of the last response sent. */
  nonce?: string;
  /** Resources the client holds after the last response (RDS/EDS responses may carry only the changed ones). */
  resources: number;
  /** Last NACK: the version refused and the client's error message. */
  lastNack?: { version: string; message: string; at: string };
  /** `SYNCED` when acked === sent, `STALE` while a push is unacknowledged, `NOT SENT` before any. */
  state: 'SYNCED' | 'STALE' | 'NACKED' | 'NOT SENT';
}

export interface ClientSyncStatus {
  /** node.id of the client. */
  node: string;
  /** A per-connection id, since one node may reconnect or run several streams. */
  stream: string;
  /** Peer address of the gRPC stream. */
  peer: string;
  connectedAt: string;
  types: Partial<Record<XdsShortType, TypeSyncStatus>>;
}
