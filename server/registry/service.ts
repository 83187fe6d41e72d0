// The mesh's view of a service and its endpoints, whichever source it came from (Consul catalog,
// ServiceEntry/WorkloadEntry files). Translation to xDS reads only these types.

/** Istio's port protocols (ServicePort.protocol / port-name prefix convention). */
export type PortProtocol =
  | 'HTTP' | 'HTTPS' | 'HTTP2' | 'GRPC' | 'GRPC-WEB' | 'TCP' | 'TLS' | 'MONGO' | 'REDIS' | 'MYSQL' | 'UDP'
  /** Neither named nor declared: the agent sniffs the first bytes. */
  | 'UNSPECIFIED';

export interface ServicePort {
  /** Port name, unique within the service (`http`, `grpc-web`, ...). */
  name: string;
  number: number;
  protocol: PortProtocol;
  /** Port the workload listens on when it differs from `number` and the endpoint says nothing. */
  targetPort?: number;
}

export interface Locality {
  region: string;
  zone: string;
  subzone: string;
}

export interface Endpoint {
  /** IP address (or hostname for DNS resolution) of the workload. */
  address: string;
  /** Target port per service port name; a missing name means the service port's targetPort/number. */
  ports: Record<string, number>;
  labels: Record<string, string>;
  /** Name of the host (the mesh-agent's node name) that runs this workload, when meshed. */
  node?: string;
  healthy: boolean;
  locality: Locality;
  /** Load balancing weight, >= 1. */
  weight: number;
  /** Service account the workload runs as (its SPIFFE identity's `sa`). */
  serviceAccount?: string;
  network?: string;
}

export type ServiceSource = 'consul' | 'file';

export interface Service {
  /** Canonical hostname: the ServiceEntry host, or `NAME.service.consul` for Consul services. */
  hostname: string;
  namespace: string;
  /** Other names VirtualService hosts may use for this service (e.g. the bare Consul name). */
  aliases: string[];
  /** Virtual IPs or CIDRs clients may connect to (ServiceEntry `addresses`). */
  addresses: string[];
  ports: ServicePort[];
  resolution: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
  location: 'MESH_INTERNAL' | 'MESH_EXTERNAL';
  endpoints: Endpoint[];
  source: ServiceSource;
  /** Namespaces the service is visible to (`*` all, `.` own); Istio's default is all. */
  exportTo: string[];
  subjectAltNames: string[];
}

/** Where an endpoint serves a given service port. */
export function endpointPort(endpoint: Endpoint, port: ServicePort): number {
  return endpoint.ports[port.name] ?? port.targetPort ?? port.number;
}

/** Istio's rule: the protocol is the port name's prefix up to the first '-' (`http-web` is HTTP). */
export function protocolFromPortName(name: string): PortProtocol {
  const prefix = name.split('-')[0]!.toLowerCase();
  switch (prefix) {
    case 'http': return 'HTTP';
    case 'http2': return 'HTTP2';
    case 'https': return 'HTTPS';
    case 'grpc': return name.toLowerCase().startsWith('grpc-web') ? 'GRPC-WEB' : 'GRPC';
    case 'tcp': return 'TCP';
    case 'tls': return 'TLS';
    case 'mongo': return 'MONGO';
    case 'redis': return 'REDIS';
    case 'mysql': return 'MYSQL';
    case 'udp': return 'UDP';
    default: return 'UNSPECIFIED';
  }
}

/** Ports whose traffic is parsed as HTTP by the proxy (HTTP/1.1, h2c, gRPC). */
export function isHttpProtocol(protocol: PortProtocol): boolean {
  return protocol === 'HTTP' || protocol === 'HTTP2' || protocol === 'GRPC' || protocol === 'GRPC-WEB';
}
