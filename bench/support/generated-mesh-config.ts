// Generated file config for benchmarks: N ServiceEntries, E WorkloadEntries spread over hosts
// `host-0..host-H`, and VirtualService+DestinationRule pairs for every tenth service, in a temp dir.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

/** The port every generated service listens on. */
export const PORT = 9080;

export interface ConfigSize {
  services: number;
  endpoints: number;
  /** Endpoints are spread over this many hosts, `host-0` .. `host-(clients-1)`. */
  clients: number;
}

export function serviceName(s: number): string {
  return `svc-${s}`;
}

export function serviceEntry(name: string): string {
  return [
    'apiVersion: networking.istio.io/v1',
    'kind: ServiceEntry',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    `  hosts: [${name}]`,
    '  location: MESH_INTERNAL',
    '  resolution: STATIC',
    '  ports:',
    `    - { number: ${PORT}, name: http, protocol: HTTP }`,
    '  workloadSelector:',
    `    labels: { app: ${name} }`,
  ].join('\n');
}

export function workloadEntry(name: string, service: string, node: string, address: string, version: string): string {
  return [
    'apiVersion: networking.istio.io/v1',
    'kind: WorkloadEntry',
    'metadata:',
    `  name: ${name}`,
    `  annotations: { mesh.io/node: ${node} }`,
    'spec:',
    `  address: ${address}`,
    `  labels: { app: ${service}, version: ${version} }`,
    `  serviceAccount: ${service}`,
    `  ports: { http: ${PORT} }`,
  ].join('\n');
}

function traffic(service: string, v1Weight: number): string {
  return [
    'apiVersion: networking.istio.io/v1',
    'kind: VirtualService',
    'metadata:',
    `  name: ${service}`,
    'spec:',
    `  hosts: [${service}]`,
    '  http:',
    '    - route:',
    `        - destination: { host: ${service}, subset: v1 }`,
    `          weight: ${v1Weight}`,
    `        - destination: { host: ${service}, subset: v2 }`,
    `          weight: ${100 - v1Weight}`,
    '---',
    'apiVersion: networking.istio.io/v1',
    'kind: DestinationRule',
    'metadata:',
    `  name: ${service}`,
    'spec:',
    `  host: ${service}`,
    '  subsets:',
    '    - { name: v1, labels: { version: v1 } }',
    '    - { name: v2, labels: { version: v2 } }',
  ].join('\n');
}

/** 10.200.x.y for endpoint j (x from 0, y from 1..250): data only, nothing connects to it. */
function endpointAddress(j: number): string {
  return `10.200.${Math.floor(j / 250) % 256}.${(j % 250) + 1}`;
}

const SERVICES_PER_FILE = 50;
const ENDPOINTS_PER_FILE = 500;
const ROUTED_EVERY = 10;
const ROUTED_PER_FILE = 10;

export interface GeneratedConfig {
  dir: string;
  files: number;
  routedServices: number;
  workloadFiles: number;
  trafficFiles: number;
  /** Workloads file `index` again, its first endpoint moved to `address` (scenario b). */
  workloadsFile: (index: number, address: string) => { name: string; content: string };
  /** Traffic file `index` again, its first VirtualService with weight `v1Weight` for v1 (scenario a). */
  trafficFile: (index: number, v1Weight: number) => { name: string; content: string };
}

function endpointDoc(j: number, settings: ConfigSize, address = endpointAddress(j)): string {
  const service = serviceName(j % settings.services);
  return workloadEntry(`we-${j}`, service, `host-${j % settings.clients}`, address, j % 2 === 0 ? 'v1' : 'v2');
}

export function generateConfig(settings: ConfigSize): GeneratedConfig {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-push-bench-'));
  let files = 0;
  const write = (name: string, docs: string[]) => {
    fs.writeFileSync(path.join(dir, name), docs.join('\n---\n') + '\n');
    files++;
  };
  for (let start = 0; start < settings.services; start += SERVICES_PER_FILE) {
    const docs: string[] = [];
    for (let s = start; s < Math.min(settings.services, start + SERVICES_PER_FILE); s++) docs.push(serviceEntry(serviceName(s)));
    write(`services-${String(start / SERVICES_PER_FILE).padStart(3, '0')}.yaml`, docs);
  }
  const fileName = (prefix: string, index: number) => `${prefix}-${String(index).padStart(3, '0')}.yaml`;
  const workloadsDocs = (index: number, firstAddress?: string): string[] => {
    const docs: string[] = [];
    const start = index * ENDPOINTS_PER_FILE;
    for (let j = start; j < Math.min(settings.endpoints, start + ENDPOINTS_PER_FILE); j++) docs.push(endpointDoc(j, settings, j === start ? firstAddress : undefined));
    return docs;
  };
  const workloadFiles = Math.ceil(settings.endpoints / ENDPOINTS_PER_FILE);
  for (let index = 0; index < workloadFiles; index++) write(fileName('workloads', index), workloadsDocs(index));
  const routed: number[] = [];
  for (let s = 0; s < settings.services; s += ROUTED_EVERY) routed.push(s);
  const trafficDocs = (index: number, firstWeight = 90) =>
    routed.slice(index * ROUTED_PER_FILE, (index + 1) * ROUTED_PER_FILE).map((s, i) => traffic(serviceName(s), i === 0 ? firstWeight : 90));
  const trafficFiles = Math.ceil(routed.length / ROUTED_PER_FILE);
  for (let index = 0; index < trafficFiles; index++) write(fileName('traffic', index), trafficDocs(index));
  return {
    dir,
    files,
    routedServices: routed.length,
    workloadFiles,
    trafficFiles,
    workloadsFile: (index, address) => ({ name: fileName('workloads', index), content: workloadsDocs(index, address).join('\n---\n') + '\n' }),
    trafficFile: (index, weight) => ({ name: fileName('traffic', index), content: trafficDocs(index, weight).join('\n---\n') + '\n' }),
  };
}

/** Writes next to the target under a hidden name (the loader skips those), then renames over it. */
export function writeAtomically(file: string, content: string): number {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(temp, content);
  fs.renameSync(temp, file);
  return performance.now();
}
