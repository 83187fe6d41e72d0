// Envoy's outlier detection for one cluster, consecutive-error kinds: per-endpoint results
// (HTTP status codes and local-origin failures, folded together as Envoy does when
// split_external_local_origin_errors is off, counted apart when it is on) eject an endpoint after
// N consecutive errors, for
// base_ejection_time × times ejected in a row (capped by max_ejection_time), within
// max_ejection_percent; one unref'd interval timer per cluster brings endpoints back.
//
// API (for the TCP path in agent/proxy/outbound.ts and the HTTP request path):
//   const detector = table.guard(cluster).detector;   // undefined without outlier_detection
//   detector.recordResponse(endpoint.key, status)     // every upstream HTTP response
//   detector.recordFailure(endpoint.key, 'connect-failure' | 'timeout' | 'reset')
//   detector.recordConnected(endpoint.key, final)     // connection established; final: TCP proxying
//   detector.isEjected(endpoint.key)
// Ejections and returns call `onChange`, which rebuilds the cluster's endpoint set (the balancer
// then skips ejected endpoints, with priority spill-over and the panic threshold).
import type { Clock, RepeatingTimer } from './clock';
import { durationMs, wrappedCount, wrappedPercent, type DecodedDuration, type Wrapped } from './decoded-fields';

export interface OutlierSettings {
  readonly consecutive5xx: number;
  readonly enforcingConsecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  readonly enforcingConsecutiveGatewayFailure: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
  /** split_external_local_origin_errors: local-origin failures have their own consecutive count. */
  readonly splitLocalOrigin: boolean;
  readonly consecutiveLocalOriginFailure: number;
  readonly enforcingConsecutiveLocalOriginFailure: number;
}

/** The part of a decoded Cluster read here. */
export interface DecodedOutlierDetection {
  outlier_detection?: {
    consecutive_5xx?: Wrapped;
    enforcing_consecutive_5xx?: Wrapped;
    consecutive_gateway_failure?: Wrapped;
    enforcing_consecutive_gateway_failure?: Wrapped;
    interval?: DecodedDuration;
    base_ejection_time?: DecodedDuration;
    max_ejection_time?: DecodedDuration;
    max_ejection_percent?: Wrapped;
    split_external_local_origin_errors?: boolean;
    enforcing_success_rate?: Wrapped;
    enforcing_failure_percentage?: Wrapped;
    enforcing_failure_percentage_local_origin?: Wrapped;
    enforcing_local_origin_success_rate?: Wrapped;
    enforcing_consecutive_local_origin_failure?: Wrapped;
    consecutive_local_origin_failure?: Wrapped;
  };
}

/**
 * The cluster's outlier detection, undefined when it has none. Throws, naming the cluster and the
 * field, for settings the agent cannot honour: the statistical kinds (success rate, failure
 * percentage) when enforced, and separate local-origin accounting.
 */
export function outlierSettings(cluster: DecodedOutlierDetection, name: string): OutlierSettings | undefined {
  const od = cluster.outlier_detection;
  if (!od) return undefined;
  const where = `cluster ${name}: outlier_detection`;
  // Envoy enforces success rate by default (100); Istio always sends 0. Non-zero asks for ejection kinds the agent does not compute.
  for (const field of ['enforcing_success_rate', 'enforcing_failure_percentage', 'enforcing_failure_percentage_local_origin', 'enforcing_local_origin_success_rate'] as const) {
    const fallback = field === 'enforcing_success_rate' ? 100 : 0;
    if (wrappedPercent(od[field], fallback, `${where}.${field}`) > 0) {
      throw new Error(`${where}.${field} is not supported by mesh-agent (only consecutive 5xx and gateway-error ejection); set it to 0`);
    }
  }
  const settings: OutlierSettings = {
    consecutive5xx: wrappedCount(od.consecutive_5xx, 5, `${where}.consecutive_5xx`),
    enforcingConsecutive5xx: wrappedPercent(od.enforcing_consecutive_5xx, 100, `${where}.enforcing_consecutive_5xx`),
    consecutiveGatewayFailure: wrappedCount(od.consecutive_gateway_failure, 5, `${where}.consecutive_gateway_failure`),
    enforcingConsecutiveGatewayFailure: wrappedPercent(od.enforcing_consecutive_gateway_failure, 0, `${where}.enforcing_consecutive_gateway_failure`),
    intervalMs: durationMs(od.interval, 10_000, `${where}.interval`),
    baseEjectionTimeMs: durationMs(od.base_ejection_time, 30_000, `${where}.base_ejection_time`),
    maxEjectionTimeMs: durationMs(od.max_ejection_time, 300_000, `${where}.max_ejection_time`),
    maxEjectionPercent: wrappedPercent(od.max_ejection_percent, 10, `${where}.max_ejection_percent`),
    splitLocalOrigin: od.split_external_local_origin_errors === true,
    consecutiveLocalOriginFailure: wrappedCount(od.consecutive_local_origin_failure, 5, `${where}.consecutive_local_origin_failure`),
    enforcingConsecutiveLocalOriginFailure: wrappedPercent(od.enforcing_consecutive_local_origin_failure, 100, `${where}.enforcing_consecutive_local_origin_failure`),
  };
  // A zero interval would spin the un-ejection timer; Envoy's proto requires it to be positive.
  if (settings.intervalMs <= 0) throw new Error(`${where}.interval must be positive`);
  if (settings.baseEjectionTimeMs <= 0) throw new Error(`${where}.base_ejection_time must be positive`);
  return settings;
}

export type LocalOriginFailure = 'connect-failure' | 'timeout' | 'reset';

/** Envoy's outlier-detection stats of one cluster (outlier_detection.*). */
export interface OutlierStats {
  ejections_active: number;
  ejections_overflow: number;
  ejections_enforced_total: number;
  ejections_detected_consecutive_5xx: number;
  ejections_enforced_consecutive_5xx: number;
  ejections_detected_consecutive_gateway_failure: number;
  ejections_enforced_consecutive_gateway_failure: number;
  ejections_detected_consecutive_local_origin_failure: number;
  ejections_enforced_consecutive_local_origin_failure: number;
}

interface EndpointState {
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveLocalOrigin: number;
  /** Times ejected in a row; grows with each ejection, shrinks by one per healthy interval. */
  multiplier: number;
  /** When the current ejection started, or -1 when not ejected. */
  ejectedAt: number;
}

export interface OutlierDetectorOptions {
  clock: Clock;
  /** [0, 1); decides partial enforcement (enforcing_* between 0 and 100). */
  random?: () => number;
  /** Called after an endpoint is ejected or returns (not while recording, but synchronously after). */
  onChange?: () => void;
}

export class OutlierDetector {
  private settings: OutlierSettings;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly onChange: () => void;
  private readonly states = new Map<string, EndpointState>();
  private timer: RepeatingTimer | undefined;
  private ejected = 0;
  private readonly counters: OutlierStats = {
    ejections_active: 0,
    ejections_overflow: 0,
    ejections_enforced_total: 0,
    ejections_detected_consecutive_5xx: 0,
    ejections_enforced_consecutive_5xx: 0,
    ejections_detected_consecutive_gateway_failure: 0,
    ejections_enforced_consecutive_gateway_failure: 0,
    ejections_detected_consecutive_local_origin_failure: 0,
    ejections_enforced_consecutive_local_origin_failure: 0,
  };

  constructor(settings: OutlierSettings, endpointKeys: Iterable<string>, options: OutlierDetectorOptions) {
    this.settings = settings;
    this.clock = options.clock;
    this.random = options.random ?? Math.random;
    this.onChange = options.onChange ?? (() => undefined);
    this.setEndpoints(endpointKeys);
    this.timer = this.clock.every(settings.intervalMs, () => this.tick());
  }

  /**
   * A config update: new settings and endpoint list. State is kept for endpoints that remain
   * (an ejected endpoint stays ejected, its multiplier stays), as Envoy keeps its host objects;
   * the interval timer restarts with the new interval.
   */
  reconfigure(settings: OutlierSettings, endpointKeys: Iterable<string>): void {
    this.settings = settings;
    this.setEndpoints(endpointKeys);
    this.timer?.cancel();
    this.timer = this.clock.every(settings.intervalMs, () => this.tick());
  }

  /** Stops the timer; the detector records nothing afterwards. */
  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  isEjected(key: string): boolean {
    const state = this.states.get(key);
    return state !== undefined && state.ejectedAt >= 0;
  }

  /** Keys of the endpoints ejected now. */
  ejectedKeys(): Set<string> {
    const out = new Set<string>();
    for (const [key, state] of this.states) if (state.ejectedAt >= 0) out.add(key);
    return out;
  }

  stats(): OutlierStats {
    return { ...this.counters, ejections_active: this.ejected };
  }

  /** An HTTP response from `key`: 5xx counts toward consecutive_5xx, 502/503/504 also toward gateway failures. */
  recordResponse(key: string, status: number): void {
    const state = this.states.get(key);
    if (!state || !this.timer) return;
    if (status < 500 || status > 599) {
      state.consecutive5xx = 0;
      state.consecutiveGateway = 0;
      return;
    }
    if (status >= 502 && status <= 504) {
      if (++state.consecutiveGateway >= this.settings.consecutiveGatewayFailure && this.settings.consecutiveGatewayFailure > 0) {
        this.counters.ejections_detected_consecutive_gateway_failure++;
        if (this.enforced(this.settings.enforcingConsecutiveGatewayFailure)) {
          this.counters.ejections_enforced_consecutive_gateway_failure++;
          this.eject(key, state);
          return;
        }
      }
    } else {
      // Another 5xx breaks a run of gateway errors.
      state.consecutiveGateway = 0;
    }
    if (++state.consecutive5xx >= this.settings.consecutive5xx && this.settings.consecutive5xx > 0) {
      this.counters.ejections_detected_consecutive_5xx++;
      if (this.enforced(this.settings.enforcingConsecutive5xx)) {
        this.counters.ejections_enforced_consecutive_5xx++;
        this.eject(key, state);
      }
    }
  }

  /**
   * A local-origin failure. Not split: mapped to the status Envoy substitutes (a refused or
   * failed connect is 503, a timeout 504, a reset 502). Split: counted toward
   * consecutive_local_origin_failure only.
   */
  recordFailure(key: string, failure: LocalOriginFailure): void {
    if (!this.settings.splitLocalOrigin) {
      this.recordResponse(key, failure === 'connect-failure' ? 503 : failure === 'timeout' ? 504 : 502);
      return;
    }
    const state = this.states.get(key);
    if (!state || !this.timer) return;
    const threshold = this.settings.consecutiveLocalOriginFailure;
    if (++state.consecutiveLocalOrigin >= threshold && threshold > 0) {
      this.counters.ejections_detected_consecutive_local_origin_failure++;
      if (this.enforced(this.settings.enforcingConsecutiveLocalOriginFailure)) {
        this.counters.ejections_enforced_consecutive_local_origin_failure++;
        this.eject(key, state);
      }
    }
  }

  /**
   * A connection established to `key`. Split: ends a run of local-origin failures. Not split:
   * a success only for TCP proxying (`final`, no response will follow), like Envoy's final
   * local-origin connect success; HTTP callers record the response instead.
   */
  recordConnected(key: string, final = true): void {
    if (this.settings.splitLocalOrigin) {
      const state = this.states.get(key);
      if (state) state.consecutiveLocalOrigin = 0;
      return;
    }
    if (final) this.recordResponse(key, 200);
  }

  private enforced(percent: number): boolean {
    return percent >= 100 || (percent > 0 && this.random() * 100 < percent);
  }

  /**
   * Envoy's rule: the first ejection always happens; further ones only while the ejected share,
   * counting this one, stays within max_ejection_percent.
   */
  private eject(key: string, state: EndpointState): void {
    state.consecutive5xx = 0;
    state.consecutiveGateway = 0;
    state.consecutiveLocalOrigin = 0;
    if (state.ejectedAt >= 0) return;
    const total = this.states.size;
    if (this.ejected > 0 && ((this.ejected + 1) * 100) / total > this.settings.maxEjectionPercent) {
      this.counters.ejections_overflow++;
      return;
    }
    state.multiplier++;
    state.ejectedAt = this.clock.now();
    this.ejected++;
    this.counters.ejections_enforced_total++;
    this.onChange();
  }

  private ejectionTimeMs(state: EndpointState): number {
    const { baseEjectionTimeMs, maxEjectionTimeMs } = this.settings;
    // Envoy caps the growth at max_ejection_time, but never below one base ejection time.
    return Math.min(baseEjectionTimeMs * state.multiplier, Math.max(baseEjectionTimeMs, maxEjectionTimeMs));
  }

  private tick(): void {
    const now = this.clock.now();
    let changed = false;
    for (const state of this.states.values()) {
      if (state.ejectedAt >= 0) {
        if (now - state.ejectedAt >= this.ejectionTimeMs(state)) {
          state.ejectedAt = -1;
          this.ejected--;
          changed = true;
        }
      } else if (state.multiplier > 0) {
        // Healthy for an interval: the next ejection, if any, is shorter again.
        state.multiplier--;
      }
    }
    if (changed) this.onChange();
  }

  private setEndpoints(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const [key, state] of this.states) {
      if (keep.has(key)) continue;
      if (state.ejectedAt >= 0) this.ejected--;
      this.states.delete(key);
    }
    for (const key of keep) if (!this.states.has(key)) this.states.set(key, { consecutive5xx: 0, consecutiveGateway: 0, consecutiveLocalOrigin: 0, multiplier: 0, ejectedAt: -1 });
  }
}
