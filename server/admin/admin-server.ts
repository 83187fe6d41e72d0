// mesh-server's monitoring/admin HTTP API (Istio's :15014): health, readiness, Prometheus metrics
// and read-only debug views of the config model and of every xDS client's sync state.
import { createAdminHttp, queryString, type AdminHttp, type AdminHttpAddress, type AdminRoute } from '../../lib/admin/admin-http';
import type { Logger } from '../../lib/log';
import { formatIssue, type ConfigIssue } from '../../lib/config/issue';
import type { ConfigResource } from '../config/resource';
import type { MeshModel } from '../model/mesh-model';
import type { Service } from '../registry/service';
import type { SourceStatus } from '../sources/source';
import type { ClientSyncStatus } from '../xds/sync-status';
import type { ServerMetrics } from './server-metrics';

/** Everything the admin API reads, as functions so every request sees the current state. */
export interface AdminInputs {
  logger: Logger;
  metrics: ServerMetrics;
  /** The model being served; undefined until the first one is built. */
  model(): MeshModel | undefined;
  sources(): Record<string, SourceStatus>;
  syncStatus(): ClientSyncStatus[];
  /** Re-reads the config directory; without it POST /debug/reload does not exist. */
  reload?(): Promise<void>;
}

export type AdminAddress = AdminHttpAddress;
export type AdminServer = AdminHttp;

export interface ReadinessReport {
  ready: boolean;
  /** Version of the model served, or null before the first one. */
  modelVersion: number | null;
  /** Sources not ready yet, with their own explanation. */
  missing: Array<{ source: string; detail: string }>;
  sources: Record<string, SourceStatus>;
}

export interface ConfigDump {
  version: number;
  rootNamespace: string;
  trustDomain: string;
  resources: Record<string, readonly ConfigResource[]>;
  services: Service[];
  issues: readonly ConfigIssue[];
}

export interface IssuesReport {
  modelVersion: number | null;
  errors: number;
  warnings: number;
  issues: Array<ConfigIssue & { text: string }>;
}

/** Why no model exists is the question an operator asks first; say it the same way everywhere. */
const NO_MODEL = 'no config model has been built yet';

export function readiness(inputs: Pick<AdminInputs, 'model' | 'sources'>): ReadinessReport {
  const sources = inputs.sources();
  const model = inputs.model();
  const missing = Object.entries(sources)
    .filter(([, status]) => !status.ready)
    .map(([source, status]) => ({ source, detail: status.detail ?? 'first load not complete' }));
  return { ready: missing.length === 0 && model !== undefined, modelVersion: model?.version ?? null, missing, sources };
}

export function configDump(model: MeshModel): ConfigDump {
  const resources: Record<string, readonly ConfigResource[]> = {};
  for (const kind of [...model.resources.keys()].sort()) resources[kind] = model.resources.get(kind) ?? [];
  const services = [...model.services.values()].sort((a, b) => a.hostname.localeCompare(b.hostname));
  return {
    version: model.version,
    rootNamespace: model.rootNamespace,
    trustDomain: model.trustDomain,
    resources,
    services,
    issues: model.issues,
  };
}

export function issuesReport(model: MeshModel | undefined): IssuesReport {
  const issues = (model?.issues ?? []).map((issue) => ({ ...issue, text: formatIssue(issue) }));
  return {
    modelVersion: model?.version ?? null,
    errors: issues.filter((issue) => issue.severity === 'error').length,
    warnings: issues.filter((issue) => issue.severity === 'warning').length,
    issues,
  };
}

export function createAdminServer(inputs: AdminInputs): AdminServer {
  const log = inputs.logger.child({ component: 'admin' });
  // Concurrent reload requests share one run instead of reading the directory several times.
  let reloading: Promise<void> | undefined;

  const routes: AdminRoute[] = [
    {
      method: 'GET',
      url: '/healthz',
      description: 'liveness: 200 while the process serves',
      handler: async (_request, reply) => reply.type('text/plain; charset=utf-8').send('ok'),
    },
    {
      method: 'GET',
      url: '/ready',
      description: 'readiness: 200 once every source is ready and a model exists',
      handler: async (_request, reply) => {
        const report = readiness(inputs);
        return reply.code(report.ready ? 200 : 503).send({
          ...report,
          ...(report.modelVersion === null ? { reason: NO_MODEL } : {}),
        });
      },
    },
    {
      method: 'GET',
      url: '/metrics',
      description: 'Prometheus metrics',
      handler: async (_request, reply) => {
        // Source stats (Consul index, errors) move without any event, so they are read at
        // scrape time; re-reading the model too keeps both views consistent in one scrape.
        inputs.metrics.observeSources(inputs.sources());
        const model = inputs.model();
        if (model) inputs.metrics.observeModel(model);
        return reply.type(inputs.metrics.contentType).send(await inputs.metrics.metricsText());
      },
    },
    ...(['/debug/config', '/debug/configz'] as const).map((url): AdminRoute => ({
      method: 'GET',
      url,
      description: 'the config model: resources by kind, services with endpoints, issues',
      handler: async (_request, reply) => {
        const model = inputs.model();
        if (!model) return reply.code(503).send({ error: 'Service Unavailable', message: NO_MODEL });
        return reply.send(configDump(model));
      },
    })),
    {
      method: 'GET',
      url: '/debug/issues',
      description: 'config issues (JSON, or one line per issue with ?format=text)',
      handler: async (request, reply) => {
        const report = issuesReport(inputs.model());
        if (queryString(request, 'format') === 'text') {
          const lines = report.issues.map((issue) => `${issue.severity}: ${issue.text}\n`).join('');
          return reply.type('text/plain; charset=utf-8').send(lines);
        }
        return reply.send(report);
      },
    },
    {
      method: 'GET',
      url: '/debug/syncz',
      description: 'xDS sync state of every connected client (?node= to pick one node)',
      handler: async (request, reply) => {
        const node = queryString(request, 'node');
        const statuses = inputs.syncStatus();
        return reply.send(node === undefined ? statuses : statuses.filter((status) => status.node === node));
      },
    },
  ];

  const reload = inputs.reload?.bind(inputs);
  if (reload) {
    routes.push({
      method: 'POST',
      url: '/debug/reload',
      description: 'read the config directory again',
      handler: async (_request, reply) => {
        reloading ??= reload().finally(() => {
          reloading = undefined;
        });
        try {
          await reloading;
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          log.warn({ err: error }, 'reload requested over the admin API failed');
          return reply.code(500).send({ error: 'Internal Server Error', message: `reload failed: ${message}` });
        }
        log.info('config reloaded over the admin API');
        return reply.send({ reloaded: true, modelVersion: inputs.model()?.version ?? null });
      },
    });
  }

  return createAdminHttp(inputs.logger, 'admin', routes);
}
