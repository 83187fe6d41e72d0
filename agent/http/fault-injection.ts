// Envoy's HTTP fault filter as Istio configures it per route: a fixed delay for a share of
// requests (flag DI), then an abort for a share of requests (flag FI), answered with an HTTP status
// or, to gRPC clients, a trailers-only gRPC status.
import type { FaultDecision } from '../routing/route-table';

/** The faults one request draws: each share is drawn on its own, as Envoy does. */
export interface InjectedFault {
  readonly delayMs: number;
  readonly abort: FaultDecision['abort'] | undefined;
}

const NONE: InjectedFault = { delayMs: 0, abort: undefined };

/** Draws the faults of one request; NONE (shared, no allocation) when nothing is injected. */
export function drawFault(fault: FaultDecision | undefined, random: () => number): InjectedFault {
  if (!fault) return NONE;
  const delayMs = fault.delay && random() * 100 < fault.delay.percent ? fault.delay.ms : 0;
  const abort = fault.abort && random() * 100 < fault.abort.percent ? fault.abort : undefined;
  return delayMs === 0 && !abort ? NONE : { delayMs, abort };
}

/** Envoy's body of a fault abort. */
export const FAULT_ABORT_BODY = 'fault filter abort';

/**
 * The gRPC status Envoy gives a local reply with HTTP status `status` when the client speaks gRPC
 * (Envoy's Grpc::Utility::httpToGrpcStatus).
 */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return 13; // INTERNAL
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return 7; // PERMISSION_DENIED
    case 404:
      return 12; // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return 14; // UNAVAILABLE
    default:
      return 2; // UNKNOWN
  }
}

/** A gRPC request, by its content-type (application/grpc, +proto, +json, ...). */
export function isGrpc(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}
