// Content fingerprints of the model's inputs, computed once per object: models are rebuilt from
// scratch on every change, so caches that outlive a model key on what objects say, not who they are.
import { createHash } from 'node:crypto';
import { isIp } from '../kinds/common';
import type { Service } from '../registry/service';

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('base64url');
}

/** The parts of a service each kind of resource reads; endpoints only where that kind reads them. */
export interface ServiceFingerprints {
  /** Everything but the endpoints: what routes and HTTP listener chains are built from. */
  shape: string;
  /** Everything: what load assignments are built from. */
  full: string;
  /** What clusters read: the shape, the endpoints' service accounts (SANs), DNS endpoints inline. */
  cluster: string;
  /** What TCP/TLS chains read: the shape and, for a service without VIPs, its endpoint IPs. */
  chains: string;
}

const services = new WeakMap<Service, ServiceFingerprints>();
const resources = new WeakMap<object, string>();

export function serviceFingerprints(service: Service): ServiceFingerprints {
  let known = services.get(service);
  if (known) return known;
  const { endpoints, ...rest } = service;
  const shape = sha1(JSON.stringify(rest));
  const full = sha1(`${shape}\u0000${JSON.stringify(endpoints)}`);
  const dns = service.resolution === 'DNS' || service.resolution === 'DNS_ROUND_ROBIN';
  const accounts = [...new Set(endpoints.map((e) => e.serviceAccount ?? ''))].sort().join(',');
  const ips = service.addresses.length > 0 ? '' : [...new Set(endpoints.map((e) => e.address).filter((a) => isIp(a)))].sort().join(',');
  known = {
    shape,
    full,
    cluster: dns ? full : sha1(`${shape}\u0000${accounts}`),
    chains: ips === '' ? shape : sha1(`${shape}\u0000${ips}`),
  };
  services.set(service, known);
  return known;
}

/** A config resource (VirtualService, DestinationRule, ...) by its whole content; '' for none. */
export function resourceFingerprint(resource: object | undefined): string {
  if (!resource) return '';
  let known = resources.get(resource);
  if (known === undefined) resources.set(resource, (known = sha1(JSON.stringify(resource))));
  return known;
}

/** Every service's shape: routes may name any service in the model as a destination. */
export function registryShape(all: readonly Service[]): string {
  const hash = createHash('sha1');
  for (const service of all) hash.update(`${serviceFingerprints(service).shape}\u0000`);
  return hash.digest('base64url');
}
