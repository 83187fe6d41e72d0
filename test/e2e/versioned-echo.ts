// A TCP service with two versions on two hosts, reached on a virtual IP: the config e2e tests use
// to see which route is in force (each version's echo app signs its replies with its name).
import type { TestHost } from '../netns/test-network';
import type { AppSpec } from './mesh-hosts';
import { TCP_ECHO_APP } from './tcp-apps';

export const ECHO_PORT = 7000;
export const ROUTE_FILE = 'echo-route.yaml';

/** An address in the hosts' /24 that no host has: only the agents' routing gives it meaning. */
export function echoVip(hosts: Readonly<Record<string, TestHost>>): string {
  const any = Object.values(hosts)[0]!;
  return any.ip.replace(/\.\d+$/, '.200');
}

/**
 * ServiceEntry echo.mesh on the VIP, version v1 on host `v1`, v2 on host `v2`, and its subsets;
 * `trafficPolicy` is the DestinationRule's field as YAML lines indented by four spaces.
 */
export function echoService(vip: string, v1: TestHost, v2: TestHost, trafficPolicy?: string): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: echo
spec:
  hosts: [echo.mesh]
  addresses: [${vip}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${ECHO_PORT}, name: tcp-echo, protocol: TCP }
  workloadSelector:
    labels: { app: echo }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: echo-v1
  annotations: { mesh.io/node: ${v1.name} }
spec:
  address: ${v1.ip}
  labels: { app: echo, version: v1 }
  ports: { tcp-echo: ${ECHO_PORT} }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: echo-v2
  annotations: { mesh.io/node: ${v2.name} }
spec:
  address: ${v2.ip}
  labels: { app: echo, version: v2 }
  ports: { tcp-echo: ${ECHO_PORT} }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: echo
spec:
  host: echo.mesh
${trafficPolicy ? `  trafficPolicy:\n${trafficPolicy}\n` : ''}  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;
}

/** The VirtualService sending all of echo.mesh's TCP traffic to one subset. */
export function echoRoute(subset: 'v1' | 'v2'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: echo
spec:
  hosts: [echo.mesh]
  tcp:
    - route:
        - destination: { host: echo.mesh, subset: ${subset} }
`;
}

/** The two echo apps, each answering `bye from v1` / `bye from v2`. */
export function echoApps<H extends string>(v1Host: H, v2Host: H): AppSpec<H>[] {
  return [
    { host: v1Host, name: 'echo-v1', source: TCP_ECHO_APP, args: [String(ECHO_PORT), 'v1'] },
    { host: v2Host, name: 'echo-v2', source: TCP_ECHO_APP, args: [String(ECHO_PORT), 'v2'] },
  ];
}
