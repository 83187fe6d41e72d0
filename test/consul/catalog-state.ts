// The Consul API simulator's catalog: nodes, service instances and health checks with Consul's
// raft-index bookkeeping (per-table and per-service indexes) that blocking queries are built on.
// Instances and checks are also indexed by service and node, so that a catalog of thousands of
// services answers each per-service query without scanning everything.
import { randomUUID } from 'node:crypto';

export type CheckStatus = 'passing' | 'warning' | 'critical';

export interface NodeRecord {
  id: string;
  name: string;
  address: string;
  datacenter: string;
  meta: Record<string, string>;
  createIndex: number;
  modifyIndex: number;
}

export interface InstanceRecord {
  node: string;
  id: string;
  name: string;
  tags: string[];
  /** Empty when the instance uses its node's address, as in Consul. */
  address: string;
  port: number;
  meta: Record<string, string>;
  weights: { Passing: number; Warning: number };
  createIndex: number;
  modifyIndex: number;
}

export interface CheckRecord {
  node: string;
  checkId: string;
  name: string;
  status: CheckStatus;
  notes: string;
  output: string;
  /** Empty for node-level checks (serfHealth), which count for every instance on the node. */
  serviceId: string;
  serviceName: string;
  type: string;
  createIndex: number;
  modifyIndex: number;
}

export interface InstanceSpec {
  id?: string;
  name: string;
  tags?: string[];
  address?: string;
  port: number;
  meta?: Record<string, string>;
  weights?: { Passing?: number; Warning?: number };
}

export interface CheckSpec {
  checkId?: string;
  name?: string;
  status?: CheckStatus;
  notes?: string;
  output?: string;
  type?: string;
}

export interface NodeSpec {
  name: string;
  address: string;
  datacenter?: string;
  meta?: Record<string, string>;
}

/** Consul's node-level liveness check, created when an agent joins the cluster. */
export const SERF_HEALTH = 'serfHealth';

const instanceKey = (node: string, id: string) => `${node}\u0000${id}`;
const checkKey = (node: string, checkId: string) => `${node}\u0000${checkId}`;

export class CatalogState {
  readonly nodes = new Map<string, NodeRecord>();
  readonly instances = new Map<string, InstanceRecord>();
  readonly checks = new Map<string, CheckRecord>();
  /** Index of the last raft write applied; only moves forward except on a simulated restore. */
  raftIndex = 0;
  /** Index of the `services` table: any instance registered, changed or removed. */
  servicesIndex = 0;
  /** Index of the `checks` table: any check created, changed or removed (`/v1/health/state/:state`). */
  checksIndex = 0;
  /**
   * Index of the `nodes` table (`/v1/catalog/nodes`): a node created or changed, and, as in Consul
   * since node catalog queries include services, any instance registered or removed.
   */
  nodesIndex = 0;
  /** Per-service index (Consul's `service.<name>` index entries), moved by instance, check and node writes. */
  private readonly serviceIndexes = new Map<string, number>();
  private readonly listeners = new Set<(kind: 'write' | 'restore') => void>();
  private readonly instancesByService = new Map<string, Map<string, InstanceRecord>>();
  private readonly instancesByNode = new Map<string, Map<string, InstanceRecord>>();
  private readonly checksByNode = new Map<string, Map<string, CheckRecord>>();

  constructor(readonly defaultDatacenter: string) {}

  onCommit(listener: (kind: 'write' | 'restore') => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** X-Consul-Index of `/catalog/service/:name` and `/health/service/:name`; never below 1. */
  serviceIndex(name: string): number {
    return Math.max(1, this.serviceIndexes.get(name) ?? this.servicesIndex);
  }

  /** X-Consul-Index of `/catalog/services`; never below 1. */
  catalogIndex(): number {
    return Math.max(1, this.servicesIndex);
  }

  /** X-Consul-Index of `/health/state/:state`; never below 1. */
  checksTableIndex(): number {
    return Math.max(1, this.checksIndex);
  }

  /** X-Consul-Index of `/catalog/nodes`; never below 1. */
  nodesTableIndex(): number {
    return Math.max(1, this.nodesIndex);
  }

  instancesOf(name: string): InstanceRecord[] {
    return [...(this.instancesByService.get(name)?.values() ?? [])]
      .sort((a, b) => a.node.localeCompare(b.node) || a.id.localeCompare(b.id));
  }

  instance(node: string, id: string): InstanceRecord | undefined {
    return this.instances.get(instanceKey(node, id));
  }

  /** Checks that decide an instance's health: its own and its node's. */
  checksFor(instance: InstanceRecord): CheckRecord[] {
    return [...(this.checksByNode.get(instance.node)?.values() ?? [])]
      .filter((check) => check.serviceId === '' || check.serviceId === instance.id)
      .sort((a, b) => a.checkId.localeCompare(b.checkId));
  }

  findCheck(checkId: string, node?: string): CheckRecord | undefined {
    if (node !== undefined) return this.checks.get(checkKey(node, checkId));
    return [...this.checks.values()].find((check) => check.checkId === checkId);
  }

  /** Creates or updates a node; a new node gets a passing serfHealth check, as a joining agent does. */
  ensureNode(spec: NodeSpec): NodeRecord {
    return this.write((index) => this.applyNode(spec, index));
  }

  /**
   * Registers (or re-registers) an instance with its checks in one raft write. Existing checks of the
   * instance that the registration does not name are kept unless `replaceExistingChecks` is set,
   * like the agent's `replace-existing-checks` parameter.
   */
  registerInstance(node: NodeSpec, spec: InstanceSpec, checks: CheckSpec[], replaceExistingChecks = false): InstanceRecord {
    return this.write((index) => {
      this.applyNode(node, index);
      const id = spec.id ?? spec.name;
      const key = instanceKey(node.name, id);
      const previous = this.instances.get(key);
      const instance: InstanceRecord = {
        node: node.name,
        id,
        name: spec.name,
        tags: [...(spec.tags ?? [])],
        address: spec.address ?? '',
        port: spec.port,
        meta: { ...(spec.meta ?? {}) },
        weights: { Passing: spec.weights?.Passing ?? 1, Warning: spec.weights?.Warning ?? 1 },
        createIndex: previous?.createIndex ?? index,
        modifyIndex: index,
      };
      if (previous) this.unindexInstance(key, previous);
      this.instances.set(key, instance);
      this.indexInstance(key, instance);
      if (previous && previous.name !== instance.name) this.serviceIndexes.set(previous.name, index);
      let checksWritten = false;
      const named = new Set<string>();
      checks.forEach((check, position) => {
        const checkId = check.checkId ?? (checks.length === 1 ? `service:${id}` : `service:${id}:${position + 1}`);
        named.add(checkId);
        const existing = this.checks.get(checkKey(node.name, checkId));
        checksWritten = true;
        this.setCheck({
          node: node.name,
          checkId,
          name: check.name ?? `Service '${spec.name}' check`,
          // Consul starts a check critical unless the definition gives an initial status.
          status: check.status ?? 'critical',
          notes: check.notes ?? '',
          output: check.output ?? '',
          serviceId: id,
          serviceName: spec.name,
          type: check.type ?? 'ttl',
          createIndex: existing?.createIndex ?? index,
          modifyIndex: index,
        });
      });
      for (const check of [...(this.checksByNode.get(node.name)?.values() ?? [])]) {
        if (check.serviceId !== id) continue;
        if (replaceExistingChecks && !named.has(check.checkId)) {
          this.deleteCheck(check);
          checksWritten = true;
        } else if (!replaceExistingChecks) {
          check.serviceName = spec.name;
        }
      }
      this.servicesIndex = index;
      this.nodesIndex = index;
      if (checksWritten) this.checksIndex = index;
      this.serviceIndexes.set(spec.name, index);
      return instance;
    });
  }

  /** Removes an instance and its checks; false when there is no such instance. */
  deregisterInstance(node: string, id: string): boolean {
    const instance = this.instances.get(instanceKey(node, id));
    if (!instance) return false;
    this.write((index) => {
      this.instances.delete(instanceKey(node, id));
      this.unindexInstance(instanceKey(node, id), instance);
      for (const check of [...(this.checksByNode.get(node)?.values() ?? [])]) {
        if (check.serviceId !== id) continue;
        this.deleteCheck(check);
        this.checksIndex = index;
      }
      this.servicesIndex = index;
      this.nodesIndex = index;
      this.serviceIndexes.set(instance.name, index);
    });
    return true;
  }

  /**
   * Sets a check's status. A write that changes nothing is not applied, as the agent's anti-entropy
   * sync skips checks already in sync, so blocked watchers are not woken for nothing.
   */
  updateCheck(check: CheckRecord, status: CheckStatus, output?: string): void {
    if (check.status === status && (output === undefined || output === check.output)) return;
    this.write((index) => {
      check.status = status;
      if (output !== undefined) check.output = output;
      check.modifyIndex = index;
      this.checksIndex = index;
      this.touchServicesOf(check.node, check.serviceId, index);
    });
  }

  /**
   * Simulates a raft snapshot restore: every index drops to `toIndex` (lower than now) and blocked
   * queries are woken at once, as Consul does when it abandons its state store.
   */
  restore(toIndex: number): void {
    if (!Number.isInteger(toIndex) || toIndex < 1 || toIndex >= this.raftIndex) {
      throw new Error(`a restore must move the index backwards: ${toIndex} is not in [1, ${this.raftIndex})`);
    }
    const clamp = (value: number) => Math.min(value, toIndex);
    for (const node of this.nodes.values()) { node.createIndex = clamp(node.createIndex); node.modifyIndex = clamp(node.modifyIndex); }
    for (const instance of this.instances.values()) { instance.createIndex = clamp(instance.createIndex); instance.modifyIndex = clamp(instance.modifyIndex); }
    for (const check of this.checks.values()) { check.createIndex = clamp(check.createIndex); check.modifyIndex = clamp(check.modifyIndex); }
    for (const [name, value] of this.serviceIndexes) this.serviceIndexes.set(name, clamp(value));
    this.servicesIndex = clamp(this.servicesIndex);
    this.checksIndex = clamp(this.checksIndex);
    this.nodesIndex = clamp(this.nodesIndex);
    this.raftIndex = toIndex;
    for (const listener of this.listeners) listener('restore');
  }

  private write<T>(apply: (index: number) => T): T {
    const index = this.raftIndex + 1;
    const result = apply(index);
    this.raftIndex = index;
    for (const listener of this.listeners) listener('write');
    return result;
  }

  private applyNode(spec: NodeSpec, index: number): NodeRecord {
    const existing = this.nodes.get(spec.name);
    const datacenter = spec.datacenter ?? existing?.datacenter ?? this.defaultDatacenter;
    const meta = spec.meta ?? existing?.meta ?? {};
    if (existing && existing.address === spec.address && existing.datacenter === datacenter
      && JSON.stringify(existing.meta) === JSON.stringify(meta)) {
      return existing;
    }
    const node: NodeRecord = {
      id: existing?.id ?? randomUUID(),
      name: spec.name,
      address: spec.address,
      datacenter,
      meta: { ...meta },
      createIndex: existing?.createIndex ?? index,
      modifyIndex: index,
    };
    this.nodes.set(spec.name, node);
    this.nodesIndex = index;
    if (!existing) {
      this.checksIndex = index;
      this.setCheck({
        node: spec.name,
        checkId: SERF_HEALTH,
        name: 'Serf Health Status',
        status: 'passing',
        notes: '',
        output: 'Agent alive and reachable',
        serviceId: '',
        serviceName: '',
        type: '',
        createIndex: index,
        modifyIndex: index,
      });
    } else {
      this.touchServicesOf(spec.name, '', index);
    }
    return node;
  }

  /** A node-level change (serviceId '') moves the index of every service on that node. */
  private touchServicesOf(node: string, serviceId: string, index: number): void {
    for (const instance of this.instancesByNode.get(node)?.values() ?? []) {
      if (serviceId === '' || instance.id === serviceId) this.serviceIndexes.set(instance.name, index);
    }
  }

  private indexInstance(key: string, instance: InstanceRecord): void {
    let byService = this.instancesByService.get(instance.name);
    if (!byService) this.instancesByService.set(instance.name, byService = new Map());
    byService.set(key, instance);
    let byNode = this.instancesByNode.get(instance.node);
    if (!byNode) this.instancesByNode.set(instance.node, byNode = new Map());
    byNode.set(key, instance);
  }

  private unindexInstance(key: string, instance: InstanceRecord): void {
    const byService = this.instancesByService.get(instance.name);
    byService?.delete(key);
    if (byService?.size === 0) this.instancesByService.delete(instance.name);
    const byNode = this.instancesByNode.get(instance.node);
    byNode?.delete(key);
    if (byNode?.size === 0) this.instancesByNode.delete(instance.node);
  }

  private setCheck(check: CheckRecord): void {
    const key = checkKey(check.node, check.checkId);
    this.checks.set(key, check);
    let byNode = this.checksByNode.get(check.node);
    if (!byNode) this.checksByNode.set(check.node, byNode = new Map());
    byNode.set(key, check);
  }

  private deleteCheck(check: CheckRecord): void {
    const key = checkKey(check.node, check.checkId);
    this.checks.delete(key);
    const byNode = this.checksByNode.get(check.node);
    byNode?.delete(key);
    if (byNode?.size === 0) this.checksByNode.delete(check.node);
  }
}
