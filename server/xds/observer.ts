// Hooks the ADS server calls at the moments metrics care about. Metrics implement this; the ADS
// server knows nothing of Prometheus.
import type { XdsShortType } from './sync-status';

export interface XdsObserver {
  streamOpened(node: string): void;
  streamClosed(node: string): void;
  /** A response was sent; `latencySeconds` from the model change that caused it (0 for first replies). */
  pushed(node: string, type: XdsShortType, resources: number, latencySeconds: number): void;
  acked(node: string, type: XdsShortType): void;
  nacked(node: string, type: XdsShortType, message: string): void;
  /** A request the server could not make sense of (bad nonce, unknown type, malformed). */
  rejectedRequest(node: string, reason: string): void;
}

export const NOOP_XDS_OBSERVER: XdsObserver = {
  streamOpened() {},
  streamClosed() {},
  pushed() {},
  acked() {},
  nacked() {},
  rejectedRequest() {},
};
