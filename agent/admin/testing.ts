// A mesh-agent config view built by the real translator and decoded as the agent receives it, for
// the admin API and `meshctl proxy-config` tests: two services, one endpoint healthy, one not.
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, named, node, port, service } from '../../server/translate/testing';
import type { AgentXdsConfig } from '../xds/agent-xds';

export const ECHO_CLUSTER = 'outbound|7000||echo';
export const WEB_CLUSTER = 'outbound|8080||web';
export const VERSIONS = { LDS: 'lds-1', RDS: 'rds-2', CDS: 'cds-3', EDS: 'eds-4' } as const;

export function translatedView(source: AgentXdsConfig['source'] = 'server'): AgentXdsConfig {
  const echo = service('echo', { ports: [port(7000, 'TCP', 'tcp')], endpoints: [endpoint('10.1.0.2', { node: 'b' })] });
  const web = service('web', { ports: [port(8080, 'HTTP', 'http')], endpoints: [endpoint('10.1.0.4', { node: 'c', healthy: false })] });
  const m = model([echo, web]);
  const translator = new MeshTranslator();
  const n = node('a');
  return {
    listeners: generateDecoded(translator, m, n, TypeUrl.Listener),
    clusters: generateDecoded(translator, m, n, TypeUrl.Cluster),
    routes: generateDecoded(translator, m, n, TypeUrl.RouteConfiguration, named('8080')),
    endpoints: generateDecoded(translator, m, n, TypeUrl.ClusterLoadAssignment, named(ECHO_CLUSTER, WEB_CLUSTER)),
    versions: { ...VERSIONS },
    source,
  };
}
