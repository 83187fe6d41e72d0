// The greeter service as registry files (a ServiceEntry and one WorkloadEntry per backend), for
// conformance tests that serve it to proxyless clients without Consul.
import type { GreeterBackend } from '../fixtures/greeter';

/** `greeter` on port 50051 (GRPC); each backend is labelled `app: greeter, version: <its name>`. */
export function greeterRegistryFiles(backends: readonly GreeterBackend[]): string {
  const entry = (backend: GreeterBackend) => `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: greeter-${backend.name}
spec:
  address: 127.0.0.1
  labels: { app: greeter, version: ${backend.name} }
  ports: { grpc: ${backend.port} }
`;
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: greeter
spec:
  hosts: [greeter]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: 50051, name: grpc, protocol: GRPC }
  workloadSelector:
    labels: { app: greeter }
${backends.map(entry).join('')}`;
}
