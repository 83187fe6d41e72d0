// The contract of a service-registry source (Consul catalog, files): it watches its backend on
// its own, keeps the last complete view, and tells the server when that view changed.
import type { Service } from '../registry/service';

export interface SourceStatus {
  /** True once one complete load has succeeded; readiness waits for every source. */
  ready: boolean;
  /** Short reason when not ready or degraded, e.g. `consul 127.0.0.1:8500: ECONNREFUSED`. */
  detail?: string;
  /** Source-specific figures for /metrics and /debug (watched services, errors, last index...). */
  stats?: Record<string, number | string>;
}

export interface RegistrySource {
  readonly name: string;
  /** Starts watching. Resolves promptly even when the backend is down; keeps retrying. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The current complete view; the last good one while the backend fails. */
  services(): readonly Service[];
  status(): SourceStatus;
  /** Called after the view changed (already debounced by nothing: the server debounces). */
  onChange(listener: () => void): void;
}
