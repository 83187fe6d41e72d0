// mesh-server's Prometheus metrics: xDS distribution (fed through XdsObserver), config health,
// source readiness and process figures, all on a registry of their own (served on :15014/metrics).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MeshModel } from '../model/mesh-model';
import type { IssueSeverity } from '../../lib/config/issue';
import type { SourceStatus } from '../sources/source';
import type { XdsObserver } from '../xds/observer';
import type { XdsShortType } from '../xds/sync-status';

/**
 * Push latency buckets, 1 ms to 10 s. Pushes are debounced (typically 100 ms), so most land
 * between 0.1 s and 1 s; the upper buckets exist to make a stuck translation visible.
 */
export const PUSH_TIME_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const SEVERITIES: readonly IssueSeverity[] = ['error', 'warning'];

/** String stats become label values; a long free-text value would be a new series per change. */
const MAX_STATE_LABEL_LENGTH = 64;

export class ServerMetrics implements XdsObserver {
  /** Exposed so the server can register metrics of its own next to these ones. */
  readonly registry: Registry;

  private readonly connectedClients: Gauge;
  private readonly pushes: Counter<'type'>;
  private readonly pushedResources: Counter<'type'>;
  private readonly pushTime: Histogram<'type'>;
  private readonly acks: Counter<'type'>;
  private readonly nacks: Counter<'type'>;
  private readonly rejectedRequests: Counter;
  private readonly configErrors: Gauge<'severity'>;
  private readonly configResources: Gauge<'kind'>;
  private readonly services: Gauge;
  private readonly configReloads: Counter;
  private readonly modelVersion: Gauge;
  private readonly sourceReady: Gauge<'source'>;
  private readonly sourceStat: Gauge<'source' | 'stat'>;
  private readonly sourceState: Gauge<'source' | 'stat' | 'value'>;
  /** Counted here rather than read back from the gauge, so a stray close cannot go below zero. */
  private streams = 0;

  constructor() {
    this.registry = new Registry();
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];

    this.connectedClients = new Gauge({
      name: 'mesh_xds_connected_clients',
      help: 'Open xDS (ADS) streams from agents and proxyless gRPC clients.',
      registers,
    });
    this.pushes = new Counter({
      name: 'mesh_xds_pushes_total',
      help: 'xDS responses sent, by resource type.',
      labelNames: ['type'],
      registers,
    });
    this.pushedResources = new Counter({
      name: 'mesh_xds_pushed_resources_total',
      help: 'Resources carried by xDS responses, by resource type.',
      labelNames: ['type'],
      registers,
    });
    this.pushTime = new Histogram({
      name: 'mesh_xds_push_time_seconds',
      help: 'Time from the model change that caused a push to the response being sent, by resource type.',
      labelNames: ['type'],
      buckets: [...PUSH_TIME_BUCKETS],
      registers,
    });
    this.acks = new Counter({
      name: 'mesh_xds_acks_total',
      help: 'xDS responses acknowledged by clients, by resource type.',
      labelNames: ['type'],
      registers,
    });
    this.nacks = new Counter({
      name: 'mesh_xds_nacks_total',
      help: 'xDS responses refused (NACKed) by clients, by resource type.',
      labelNames: ['type'],
      registers,
    });
    this.rejectedRequests = new Counter({
      name: 'mesh_xds_rejected_requests_total',
      help: 'xDS requests the server could not make sense of (bad nonce, unknown type, malformed).',
      registers,
    });
    this.configErrors = new Gauge({
      name: 'mesh_config_errors',
      help: 'Problems in the config currently on disk, by severity.',
      labelNames: ['severity'],
      registers,
    });
    this.configResources = new Gauge({
      name: 'mesh_config_resources',
      help: 'Valid Istio resources in the current model, by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.services = new Gauge({
      name: 'mesh_services',
      help: 'Services known to the current model, from every source.',
      registers,
    });
    this.configReloads = new Counter({
      name: 'mesh_config_reloads_total',
      help: 'Times the config directory was read again (file change, SIGHUP or /debug/reload).',
      registers,
    });
    this.modelVersion = new Gauge({
      name: 'mesh_model_version',
      help: 'Version of the model snapshot currently served.',
      registers,
    });
    this.sourceReady = new Gauge({
      name: 'mesh_source_ready',
      help: '1 once the registry source has completed a full load, else 0.',
      labelNames: ['source'],
      registers,
    });
    this.sourceStat = new Gauge({
      name: 'mesh_source_stat',
      help: 'Numeric figures reported by a registry source (watched services, errors, Consul index...).',
      labelNames: ['source', 'stat'],
      registers,
    });
    this.sourceState = new Gauge({
      name: 'mesh_source_state',
      help: 'Textual state reported by a registry source (e.g. the Consul watch state), as a label; always 1.',
      labelNames: ['source', 'stat', 'value'],
      registers,
    });

    // Zero-valued series for every severity, so alerts on `mesh_config_errors > 0` have data
    // before the first model arrives.
    for (const severity of SEVERITIES) this.configErrors.set({ severity }, 0);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  streamOpened(_node: string): void {
    this.streams += 1;
    this.connectedClients.set(this.streams);
  }

  streamClosed(_node: string): void {
    this.streams = Math.max(0, this.streams - 1);
    this.connectedClients.set(this.streams);
  }

  pushed(_node: string, type: XdsShortType, resources: number, latencySeconds: number): void {
    this.pushes.inc({ type });
    this.pushedResources.inc({ type }, resources);
    this.pushTime.observe({ type }, latencySeconds);
  }

  acked(_node: string, type: XdsShortType): void {
    this.acks.inc({ type });
  }

  nacked(_node: string, type: XdsShortType, _message: string): void {
    this.nacks.inc({ type });
  }

  rejectedRequest(_node: string, _reason: string): void {
    this.rejectedRequests.inc();
  }

  /** Sets the config gauges from a snapshot; idempotent, so it may run on every scrape. */
  observeModel(model: MeshModel): void {
    this.modelVersion.set(model.version);
    this.services.set(model.services.size);

    const bySeverity = new Map<IssueSeverity, number>(SEVERITIES.map((severity) => [severity, 0]));
    for (const issue of model.issues) bySeverity.set(issue.severity, (bySeverity.get(issue.severity) ?? 0) + 1);
    for (const [severity, count] of bySeverity) this.configErrors.set({ severity }, count);

    // Reset first so a kind whose last resource was deleted disappears instead of staying stale.
    this.configResources.reset();
    for (const [kind, resources] of model.resources) this.configResources.set({ kind }, resources.length);
  }

  /**
   * Mirrors each source's status: readiness, numeric stats as `mesh_source_stat`, string stats
   * as a `mesh_source_state` label. Sources should keep string stats to a small set of states.
   */
  observeSources(statuses: Record<string, SourceStatus>): void {
    // A removed source or a state that changed must not leave its old series behind.
    this.sourceReady.reset();
    this.sourceStat.reset();
    this.sourceState.reset();
    for (const [source, status] of Object.entries(statuses)) {
      this.sourceReady.set({ source }, status.ready ? 1 : 0);
      for (const [stat, value] of Object.entries(status.stats ?? {})) {
        if (typeof value === 'number') {
          if (Number.isFinite(value)) this.sourceStat.set({ source, stat }, value);
        } else {
          this.sourceState.set({ source, stat, value: value.slice(0, MAX_STATE_LABEL_LENGTH) }, 1);
        }
      }
    }
  }

  configReloaded(): void {
    this.configReloads.inc();
  }
}
