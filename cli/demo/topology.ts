// The machine room `meshctl demo` simulates: namespaces, addresses, which host runs which Bookinfo
// app, and the names apps resolve. It mirrors examples/bookinfo/workloads.yaml (addresses, mesh.io/node).
import type { HostSpec } from '../../lib/netns/host-network';

/** Every namespace the demo creates starts with this, so a killed run's leftovers can be found. */
export const NAMESPACE_PREFIX = 'meshdemo-';
export const BRIDGE_NAMESPACE = `${NAMESPACE_PREFIX}br`;
export const PREFIX_LENGTH = 24;
/** The demo's temp dir (agent configs, state, logs) is os.tmpdir()/mesh-demo-XXXXXX. */
export const TEMP_DIR_PREFIX = 'mesh-demo-';

/** xDS and the CA over TLS with client certificates (Istio's istiod port). */
export const SECURE_XDS_PORT = 15012;
export const SERVER_ADMIN_PORT = 15014;
export const AGENT_ADMIN_PORT = 15000;
export const AGENT_READINESS_PORT = 15021;
/** The uid mesh-agent runs as; its own connections are never captured (Istio's 1337). */
export const AGENT_UID = 1337;

/** One Bookinfo workload: a script from examples/bookinfo/apps run by node, as a WorkloadEntry describes it. */
export interface DemoApp {
  /** The WorkloadEntry's name. */
  readonly workload: string;
  readonly script: string;
  readonly version: string;
  readonly serviceAccount: string;
  /** The workload's own port and the service port name it serves (the WorkloadEntry's `ports`). */
  readonly port: number;
  readonly portName: string;
}

export interface DemoHost extends HostSpec {
  /** The mesh-agent node name (mesh.io/node); undefined for the control-plane host, which runs no agent. */
  readonly node: string | undefined;
  readonly locality: string | undefined;
  readonly apps: readonly DemoApp[];
}

function app(workload: string, version: string, port: number): DemoApp {
  const service = workload.slice(0, workload.lastIndexOf('-'));
  return { workload, script: `${service}.js`, version, serviceAccount: `bookinfo-${service}`, port, portName: 'http' };
}

function host(name: string, ip: string, zone: string, apps: readonly DemoApp[]): DemoHost {
  return { name, namespace: `${NAMESPACE_PREFIX}${name}`, ip, node: name, locality: `demo/${zone}`, apps };
}

/** mesh-server's host: reachable by the agents over the bridge, its admin port from inside it. */
export const CONTROL_PLANE: DemoHost = { name: 'cp', namespace: `${NAMESPACE_PREFIX}cp`, ip: '10.77.0.2', node: undefined, locality: undefined, apps: [] };

export const MESH_HOSTS: readonly DemoHost[] = [
  host('host-a', '10.77.0.11', 'zone-a', [app('productpage-v1', 'v1', 9080)]),
  host('host-b', '10.77.0.12', 'zone-b', [app('reviews-v1', 'v1', 9081), app('reviews-v2', 'v2', 9082), app('details-v1', 'v1', 9083)]),
  host('host-c', '10.77.0.13', 'zone-c', [app('reviews-v3', 'v3', 9081)]),
  host('host-d', '10.77.0.14', 'zone-d', [app('ratings-v1', 'v1', 9080)]),
];

export const ALL_HOSTS: readonly DemoHost[] = [CONTROL_PLANE, ...MESH_HOSTS];

/** Where the "try it" commands run: a meshed host, so requests go through its agent like an app's. */
export const CLIENT_HOST: DemoHost = MESH_HOSTS[0]!;

/**
 * The names apps call (Bookinfo's service names, port 9080), as /etc/hosts entries in every host.
 * Istio's DNS proxy answers a STATIC ServiceEntry without addresses with its workloads' addresses;
 * here each name gets one address that only its own service uses on port 9080 (reviews: host-c,
 * whose v3 is also the destination of its first route), so that an agent which maps a connection's
 * destination address to a service, not yet routing each HTTP request, still reaches the right one.
 * With per-request HTTP routing the Host header decides and these addresses only need capturing.
 */
export const SERVICE_ADDRESSES: Readonly<Record<string, string>> = {
  productpage: '10.77.0.11',
  details: '10.77.0.12',
  reviews: '10.77.0.13',
  ratings: '10.77.0.14',
};

export const SERVICE_PORT = 9080;
