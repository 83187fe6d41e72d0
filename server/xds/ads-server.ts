// The xDS v3 Aggregated Discovery Service, state-of-the-world variant: one bidirectional stream per
// client, per-type subscriptions, versions, nonces and ACK/NACK, and debounced pushes of only what changed
// (for RDS and EDS down to the single resources that changed).
import * as crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../lib/log';
import { RESOURCE_TYPE_URLS, TYPE_SHORT_NAME, TypeUrl, type ResourceTypeUrl } from '../../lib/xds/protos';
import { structToJson } from '../../lib/xds/struct';
import type { MeshModel } from '../model/mesh-model';
import { decodeNames, parseDiscoveryRequest, type DiscoveryRequestView } from './discovery-request';
import { encodeDiscoveryResponse, encodeResourcesField, rawAdsServiceDefinition } from './discovery-response';
import type { EncodedResource, ResourceGenerator, Subscription, XdsNode } from './generator';
import { NOOP_XDS_OBSERVER, type XdsObserver } from './observer';
import { SubscriptionInterner } from './subscription-interner';
import type { ClientSyncStatus, TypeSyncStatus, XdsShortType } from './sync-status';

export interface AdsServerOptions {
  generator: ResourceGenerator;
  /** Used as given (the caller binds its context, e.g. `{component: 'ads'}`); streams get children. */
  logger: Logger;
  observer?: XdsObserver;
  /** Quiet time that ends a burst of model changes; default 100 ms. */
  debounceMs?: number;
  /** Longest a burst may delay a push, so a constant stream of changes still goes out; default 1 s. */
  maxDebounceMs?: number;
  /**
   * Streams handled per event-loop turn during a push, so the first clients get their update early
   * and ACKs and other work are not starved; default 8.
   */
  pushBatchSize?: number;
  /**
   * Bytes of responses written but not yet taken by the clients' connections above which further
   * responses wait for earlier ones to drain; default 32 MiB. grpc-js frames every response into
   * a buffer of its own, so a fleet syncing at once would otherwise hold a copy of the whole mesh
   * per client until its connection drains.
   */
  maxBufferedBytes?: number;
  /** With responses waiting and no write completing for this long, the waiting ones go out anyway; default 2 s. */
  stallMs?: number;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface AdsServerStats {
  streams: number;
  pushes: number;
  acks: number;
  nacks: number;
  rejected: number;
  /** First requests answered with nothing because the client stated the current version. */
  resumed: number;
  /** setModel (the first call of a debounced burst) to the response being written, over the latest pushes. */
  pushLatencyMs: LatencySummary;
  /** Response written to its ACK arriving, over the latest ACKs. */
  ackLatencyMs: LatencySummary;
}

/** Requests arrive as bytes (parsed by parseDiscoveryRequest); responses leave as encoded bytes. */
export type AdsCall = grpc.ServerDuplexStream<Buffer, Buffer>;

/**
 * Decides whether the caller of a stream may speak for `nodeId` (on the mTLS port: the node its
 * certificate names); a refusal ends the stream with that status and message.
 */
export type AdsNodeAuthorizer = (call: AdsCall, nodeId: string) => { code: grpc.status; message: string } | undefined;

/** Make-before-break order for SotW ADS (Envoy's xDS protocol, "eventual consistency considerations"). */
const PUSH_ORDER: readonly ResourceTypeUrl[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
];

/**
 * Types whose SotW responses may carry only some of the subscribed resources: "the management server
 * only needs to send the resources that the client has subscribed to and that changed" (Envoy's xDS
 * protocol). Clients keep the ones left out (grpc-js-xds: `allResourcesRequiredInSotW()` is false for
 * these; AdsClient merges them). Listener and Cluster responses must always carry the full set.
 */
const PARTIAL_TYPES: ReadonlySet<ResourceTypeUrl> = new Set([TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment]);

const KNOWN_TYPE_URLS: ReadonlySet<string> = new Set(RESOURCE_TYPE_URLS);

/** Printable ASCII without spaces: what hostnames, Istio-style and grpc-js-xds node ids look like. */
const NODE_ID_PATTERN = /^[\x21-\x7e]{1,512}$/;

const WILDCARD: Subscription = { wildcard: true };
const NOTHING: Subscription = { wildcard: false, names: new Set() };

interface TypeState {
  readonly typeUrl: ResourceTypeUrl;
  readonly short: XdsShortType;
  subscription: Subscription;
  /** resource_names of the last request as encoded, to notice a change without decoding. */
  namesKey: Buffer;
  /** The subscription changed since the resources were last computed for this client. */
  subscriptionChanged: boolean;
  sentVersion?: string;
  /**
   * The version_info of the stream's first request of this type: what a reconnecting client
   * already holds. When the first snapshot computed for it has this version, nothing is sent.
   */
  resumedVersion?: string;
  /**
   * RDS/EDS only: the set the client holds as far as the server knows, so that the next response
   * carries only what differs from it. Undefined (send everything) before the first response and
   * after a NACK, when the client may hold something else.
   */
  held?: ResourceSnapshot;
  nonce?: string;
  sentAt: number;
  /** Resources the client holds after the last response (a partial response carries fewer). */
  resources: number;
  ackedVersion?: string;
  ackedNonce?: string;
  nackedNonce?: string;
  lastNack?: { version: string; message: string; at: string };
  /** A response is due but waits for buffered bytes to drain; `waitingSince` is its model change. */
  waiting: boolean;
  waitingSince?: number;
}

interface AdsStream {
  readonly id: string;
  readonly call: AdsCall;
  readonly peer: string;
  readonly connectedAt: Date;
  node?: XdsNode;
  log: Logger;
  readonly types: Map<ResourceTypeUrl, TypeState>;
  closed: boolean;
  readonly authorize: AdsNodeAuthorizer | undefined;
  /** Bytes written on this stream whose write has not completed. */
  buffered: number;
}

/** An encoded DiscoveryResponse that every stream sending the same thing writes as is. */
interface SharedResponse {
  readonly bytes: Buffer;
  readonly nonce: string;
  /** Resources it carries. */
  readonly count: number;
}

/**
 * What one client gets of one type: the resources in name order and their combined version.
 * Snapshots are interned by content per model, so the streams of a fleet that get the same set
 * share one object, its encoding and its responses instead of holding a copy each.
 */
interface ResourceSnapshot {
  readonly version: string;
  /** Sorted; `names[i]` is the name `resources[i]` was generated under. */
  readonly names: readonly string[];
  readonly resources: readonly EncodedResource[];
  /** The whole set as a response, built on first use. */
  full?: SharedResponse;
  /** RDS/EDS: the response carrying what differs from a snapshot a client holds, by that snapshot. */
  partialFrom?: WeakMap<ResourceSnapshot, SharedResponse>;
}

function versionOf(text: string): string {
  return crypto.hash('sha256', text, 'base64url').slice(0, 16);
}

const EMPTY_SNAPSHOT: ResourceSnapshot = { version: versionOf(''), names: [], resources: [] };
const NO_NAMES = Buffer.alloc(0);

function buildSnapshot(resources: ReadonlyMap<string, EncodedResource>): ResourceSnapshot {
  if (resources.size === 0) return EMPTY_SNAPSHOT;
  // Sorted so that the version and the bytes do not depend on the generator's iteration order.
  const names = Array.from(resources.keys()).sort();
  const list = new Array<EncodedResource>(names.length);
  let text = '';
  for (let i = 0; i < names.length; i++) {
    const resource = resources.get(names[i]!)!;
    list[i] = resource;
    text += `${names[i]}\u0000${resource.hash}\n`;
  }
  return { version: versionOf(text), names, resources: list };
}

/**
 * The resources of `next` that `held` lacks or has with another hash, in name order: one merge
 * walk over the two sorted name lists. Names only in `held` need nothing: the client either
 * unsubscribed (and dropped them) or they no longer exist (which SotW RDS/EDS cannot express).
 */
function changedResources(held: ResourceSnapshot, next: ResourceSnapshot): EncodedResource[] {
  const changed: EncodedResource[] = [];
  let h = 0;
  for (let n = 0; n < next.names.length; n++) {
    const name = next.names[n]!;
    while (h < held.names.length && held.names[h]! < name) h++;
    if (h < held.names.length && held.names[h] === name && held.resources[h]!.hash === next.resources[n]!.hash) continue;
    changed.push(next.resources[n]!);
  }
  return changed;
}

function sameSubscription(a: Subscription, b: Subscription): boolean {
  if (a.wildcard || b.wildcard) return a.wildcard === b.wildcard;
  if (a.names.size !== b.names.size) return false;
  for (const name of a.names) if (!b.names.has(name)) return false;
  return true;
}

/**
 * Envoy's rules: an empty first request or `*` means wildcard; later requests replace the names.
 * An empty list keeps a wildcard subscription (legacy wildcard clients always send none) and
 * otherwise means "nothing of this type".
 */
function nextSubscription(names: readonly string[], previous: Subscription | undefined): Subscription {
  if (names.includes('*')) return WILDCARD;
  if (names.length === 0) return previous === undefined || previous.wildcard ? WILDCARD : NOTHING;
  return { wildcard: false, names: new Set(names) };
}

/** Keeps the latest samples in a ring so summaries cost nothing until asked for. */
class LatencySamples {
  private readonly samples: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(capacity: number) {
    this.samples = new Float64Array(capacity);
  }

  add(value: number): void {
    this.samples[this.next] = value;
    this.next = (this.next + 1) % this.samples.length;
    if (this.filled < this.samples.length) this.filled++;
  }

  clear(): void {
    this.next = 0;
    this.filled = 0;
  }

  summary(): LatencySummary {
    if (this.filled === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
    const sorted = this.samples.slice(0, this.filled).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { count: this.filled, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1]! };
  }
}

function grpcError(code: grpc.status, details: string): grpc.ServerErrorResponse {
  return Object.assign(new Error(details), { code, details });
}

export class AdsServer {
  private readonly generator: ResourceGenerator;
  private readonly log: Logger;
  private readonly observer: XdsObserver;
  private readonly debounceMs: number;
  private readonly maxDebounceMs: number;
  private readonly pushBatchSize: number;
  private readonly maxBufferedBytes: number;
  private readonly stallMs: number;
  /** Bytes of every stream's writes not yet completed. */
  private buffered = 0;
  /** Streams with a response waiting for `buffered` to fall, in the order they started waiting. */
  private readonly waitingStreams = new Set<AdsStream>();
  private stallTimer?: NodeJS.Timeout;
  private resuming = false;
  /** Set while stalled responses go out regardless of the limit. */
  private bypassingLimit = false;
  /** Tells this process's nonces and stream ids apart from those of an earlier run. */
  private readonly instance = crypto.randomBytes(3).toString('hex');
  private readonly streams = new Map<string, AdsStream>();
  /** Per generator result: the snapshot computed from it under one model, so shared results are hashed once. */
  private readonly snapshots = new WeakMap<ReadonlyMap<string, EncodedResource>, { model: MeshModel; snapshot: ResourceSnapshot }>();
  /** Snapshots of `internedModel` by type and version: equal content from different results is one object. */
  private interned = new Map<string, ResourceSnapshot>();
  private internedModel?: MeshModel;
  private readonly subscriptions = new SubscriptionInterner();
  private model?: MeshModel;
  private pendingModel?: MeshModel;
  private burstStartedAt?: number;
  private debounceTimer?: NodeJS.Timeout;
  private pushGeneration = 0;
  private streamCounter = 0;
  private nonceCounter = 0;
  private closed = false;
  private readonly counters = { pushes: 0, acks: 0, nacks: 0, rejected: 0, resumed: 0 };
  private readonly pushLatency = new LatencySamples(8192);
  private readonly ackLatency = new LatencySamples(8192);

  constructor(options: AdsServerOptions) {
    this.generator = options.generator;
    this.log = options.logger;
    this.observer = options.observer ?? NOOP_XDS_OBSERVER;
    this.debounceMs = options.debounceMs ?? 100;
    this.maxDebounceMs = Math.max(this.debounceMs, options.maxDebounceMs ?? 1000);
    this.pushBatchSize = Math.max(1, options.pushBatchSize ?? 8);
    this.maxBufferedBytes = Math.max(1, options.maxBufferedBytes ?? 32 * 1024 * 1024);
    this.stallMs = Math.max(1, options.stallMs ?? 2000);
  }

  /** Serves StreamAggregatedResources on the given server (Delta ADS answers UNIMPLEMENTED). */
  bind(grpcServer: grpc.Server, authorize?: AdsNodeAuthorizer): void {
    grpcServer.addService(rawAdsServiceDefinition(), {
      StreamAggregatedResources: (call: AdsCall) => this.openStream(call, authorize),
    });
  }

  /** A new mesh snapshot. The first one is served at once; later ones are debounced into one push. */
  setModel(model: MeshModel): void {
    if (this.closed) return;
    const now = performance.now();
    if (!this.model) {
      this.model = model;
      void this.pushAll(model, now);
      return;
    }
    this.pendingModel = model;
    if (this.burstStartedAt === undefined) this.burstStartedAt = now;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    const wait = Math.max(0, Math.min(this.debounceMs, this.burstStartedAt + this.maxDebounceMs - now));
    this.debounceTimer = setTimeout(() => this.flush(), wait);
  }

  syncStatus(): ClientSyncStatus[] {
    const out: ClientSyncStatus[] = [];
    for (const stream of this.streams.values()) {
      if (!stream.node) continue;
      const types: ClientSyncStatus['types'] = {};
      for (const state of stream.types.values()) types[state.short] = this.typeStatus(state);
      out.push({ node: stream.node.id, stream: stream.id, peer: stream.peer, connectedAt: stream.connectedAt.toISOString(), types });
    }
    return out;
  }

  /** Streams whose client has identified itself (sent its first request). */
  connectedClients(): number {
    let count = 0;
    for (const stream of this.streams.values()) if (stream.node) count++;
    return count;
  }

  stats(): AdsServerStats {
    return {
      streams: this.streams.size,
      ...this.counters,
      pushLatencyMs: this.pushLatency.summary(),
      ackLatencyMs: this.ackLatency.summary(),
    };
  }

  resetStats(): void {
    this.counters.pushes = 0;
    this.counters.acks = 0;
    this.counters.nacks = 0;
    this.counters.rejected = 0;
    this.counters.resumed = 0;
    this.pushLatency.clear();
    this.ackLatency.clear();
  }

  /** Ends every stream with status OK and stops pushing; new streams are refused with UNAVAILABLE. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    this.pendingModel = undefined;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    for (const stream of [...this.streams.values()]) {
      if (!stream.call.destroyed && !stream.call.writableEnded) stream.call.end();
      this.release(stream);
    }
  }

  private flush(): void {
    this.debounceTimer = undefined;
    const model = this.pendingModel;
    const since = this.burstStartedAt;
    this.pendingModel = undefined;
    this.burstStartedAt = undefined;
    if (!model || since === undefined || this.closed) return;
    this.model = model;
    void this.pushAll(model, since);
  }

  private async pushAll(model: MeshModel, since: number): Promise<void> {
    const generation = ++this.pushGeneration;
    const streams = [...this.streams.values()];
    const started = performance.now();
    let pushed = 0;
    for (let i = 0; i < streams.length; i++) {
      if (i > 0 && i % this.pushBatchSize === 0) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        // A newer model started its own pass over every stream; finishing this one would only
        // send versions that are already outdated.
        if (generation !== this.pushGeneration || this.closed) return;
      }
      const stream = streams[i]!;
      if (stream.closed || !stream.node) continue;
      try {
        for (const typeUrl of PUSH_ORDER) {
          const state = stream.types.get(typeUrl);
          if (state && this.respond(stream, state, state.sentVersion === undefined, since)) pushed++;
        }
      } catch (error) {
        stream.log.error({ err: error }, 'push failed');
      }
    }
    this.log.debug({ model: model.version, streams: streams.length, responses: pushed, ms: performance.now() - started }, 'model applied');
  }

  private openStream(call: AdsCall, authorize: AdsNodeAuthorizer | undefined): void {
    if (this.closed) {
      call.emit('error', grpcError(grpc.status.UNAVAILABLE, 'xDS server is shutting down'));
      return;
    }
    const id = `${this.instance}-${++this.streamCounter}`;
    const stream: AdsStream = {
      id,
      call,
      peer: call.getPeer(),
      connectedAt: new Date(),
      log: this.log,
      types: new Map(),
      closed: false,
      authorize,
      buffered: 0,
    };
    this.streams.set(id, stream);
    call.on('data', (bytes: Buffer) => {
      let request: DiscoveryRequestView;
      try {
        request = parseDiscoveryRequest(bytes);
      } catch (error) {
        this.fail(stream, grpc.status.INVALID_ARGUMENT, `malformed DiscoveryRequest: ${error instanceof Error ? error.message : String(error)}`);
        return;
      }
      try {
        this.onRequest(stream, request);
      } catch (error) {
        stream.log.error({ err: error }, 'request handling failed');
        this.fail(stream, grpc.status.INTERNAL, 'internal error while handling the request');
      }
    });
    // A client half-close ends the conversation: answer with status OK.
    call.on('end', () => {
      if (!call.destroyed && !call.writableEnded) call.end();
      this.release(stream);
    });
    call.on('cancelled', () => this.release(stream));
    call.on('close', () => this.release(stream));
    call.on('error', (error: Error) => {
      stream.log.debug({ err: error }, 'stream error');
      this.release(stream);
    });
  }

  private release(stream: AdsStream): void {
    if (stream.closed) return;
    stream.closed = true;
    this.streams.delete(stream.id);
    // Writes of a closed stream may never complete: their bytes stop counting now.
    this.buffered -= stream.buffered;
    stream.buffered = 0;
    this.waitingStreams.delete(stream);
    this.resumeWaiting(false);
    if (stream.node) {
      this.observer.streamClosed(stream.node.id);
      stream.log.info('xDS stream closed');
    }
  }

  /** Ends the stream with a status and a message for the client; the server keeps serving others. */
  private fail(stream: AdsStream, code: grpc.status, details: string): void {
    this.reject(stream, details, 'warn');
    if (!stream.call.destroyed && !stream.call.writableEnded) stream.call.emit('error', grpcError(code, details));
    this.release(stream);
  }

  private reject(stream: AdsStream, reason: string, level: 'warn' | 'debug'): void {
    this.counters.rejected++;
    this.observer.rejectedRequest(stream.node?.id ?? '', reason);
    stream.log[level]({ peer: stream.peer, reason }, 'request rejected');
  }

  private onRequest(stream: AdsStream, request: DiscoveryRequestView): void {
    if (stream.closed) return;
    if (!stream.node) {
      const node = request.node;
      if (!node) return this.fail(stream, grpc.status.INVALID_ARGUMENT, 'the first DiscoveryRequest on a stream must carry node');
      const id = node.id ?? '';
      if (!NODE_ID_PATTERN.test(id)) {
        return this.fail(stream, grpc.status.INVALID_ARGUMENT, `node.id ${JSON.stringify(id)} is not 1 to 512 printable ASCII characters without spaces`);
      }
      const refusal = stream.authorize?.(stream.call, id);
      if (refusal) return this.fail(stream, refusal.code, refusal.message);
      stream.node = { id, cluster: node.cluster ?? '', metadata: structToJson(node.metadata) };
      const locality = node.locality;
      if (locality && (locality.region || locality.zone || locality.sub_zone)) {
        stream.node.locality = { region: locality.region ?? '', zone: locality.zone ?? '', subzone: locality.sub_zone ?? '' };
      }
      stream.log = this.log.child({ stream: stream.id, node: id });
      this.observer.streamOpened(id);
      stream.log.info({ peer: stream.peer }, 'xDS stream opened');
    } else if (request.node?.id && request.node.id !== stream.node.id) {
      // The protocol says later nodes must be identical; the first one stays authoritative.
      this.reject(stream, `node.id changed to ${JSON.stringify(request.node.id)} within the stream; keeping the first`, 'warn');
    }

    const typeUrl = request.typeUrl;
    if (!KNOWN_TYPE_URLS.has(typeUrl)) {
      return this.reject(stream, `unknown type URL ${JSON.stringify(typeUrl)}`, 'warn');
    }
    const resourceType = typeUrl as ResourceTypeUrl;
    const nonce = request.responseNonce;

    let state = stream.types.get(resourceType);
    if (!state) {
      const asked = this.subscriptionOf(request.namesKey, undefined);
      state = {
        typeUrl: resourceType,
        short: TYPE_SHORT_NAME[resourceType],
        subscription: asked.subscription,
        namesKey: asked.namesKey,
        subscriptionChanged: true,
        sentAt: 0,
        resources: 0,
        waiting: false,
      };
      if (request.versionInfo !== '') state.resumedVersion = request.versionInfo;
      stream.types.set(resourceType, state);
      // The first request of a type is answered, even with nothing: clients wait for it to finish
      // initialising, and a reconnecting client may hold an outdated view. Only a client that
      // states the very version it would get (after a server restart, say) is not sent it again.
      this.respond(stream, state, true, undefined);
      return;
    }

    if (!request.namesKey.equals(state.namesKey)) {
      const asked = this.subscriptionOf(request.namesKey, state.subscription);
      state.namesKey = asked.namesKey;
      if (!sameSubscription(asked.subscription, state.subscription)) {
        state.subscription = asked.subscription;
        state.subscriptionChanged = true;
      }
    }

    // A NACK, even of an older response, means the client may hold something other than what was
    // sent (it keeps its previous resources, or in grpc-js-xds some of the refused ones): the next
    // RDS/EDS response carries the full set again.
    if (request.errorDetail) state.held = undefined;

    // A nonce other than the latest answers an older response: the client has not seen the newest
    // one yet and will send a current request after it does. The names it carried are kept above,
    // but no response is sent (Envoy's xDS protocol, "resource updates").
    if (state.nonce !== undefined && nonce !== state.nonce) {
      return this.reject(stream, `stale nonce ${JSON.stringify(nonce)} for ${state.short} (latest ${state.nonce})`, 'debug');
    }
    if (state.nonce !== undefined) {
      if (request.errorDetail) this.recordNack(stream, state, nonce, request.errorDetail, request.versionInfo);
      else if (state.ackedNonce !== nonce) this.recordAck(stream, state, nonce, request.versionInfo);
    }
    // After a NACK the same version is not sent again; only a different one (new names or a new
    // model) goes out, which respond() ensures by comparing versions.
    if (state.subscriptionChanged) this.respond(stream, state, state.sentVersion === undefined, undefined);
  }

  /**
   * The subscription a request's names make, shared with every stream that named the same list;
   * the names key kept is the shared copy, so the stream does not pin its request's buffer.
   */
  private subscriptionOf(namesKey: Buffer, previous: Subscription | undefined): { namesKey: Buffer; subscription: Subscription } {
    if (namesKey.length === 0) return { namesKey: NO_NAMES, subscription: nextSubscription([], previous) };
    const entry = this.subscriptions.intern(namesKey, () => decodeNames(namesKey));
    const subscription = entry.subscription.wildcard || entry.subscription.names.has('*') ? WILDCARD : entry.subscription;
    return { namesKey: entry.namesKey, subscription };
  }

  private recordAck(stream: AdsStream, state: TypeState, nonce: string, version: string): void {
    state.ackedVersion = version;
    state.ackedNonce = nonce;
    this.counters.acks++;
    this.ackLatency.add(performance.now() - state.sentAt);
    this.observer.acked(stream.node!.id, state.short);
  }

  private recordNack(stream: AdsStream, state: TypeState, nonce: string, detail: { code: number; message: string }, clientVersion: string): void {
    if (state.nackedNonce === nonce) return;
    const message = detail.message || `error code ${detail.code} without a message`;
    state.nackedNonce = nonce;
    state.lastNack = { version: state.sentVersion ?? '', message, at: new Date().toISOString() };
    this.counters.nacks++;
    this.observer.nacked(stream.node!.id, state.short, message);
    stream.log.warn({ type: state.short, version: state.sentVersion, clientVersion, message }, 'client rejected configuration (NACK)');
  }

  /**
   * Computes what the client should have of this type and sends it if its version differs from
   * the last one sent (or always, when `force`). `since` is the model change that caused it.
   */
  private respond(stream: AdsStream, state: TypeState, force: boolean, since: number | undefined): boolean {
    const model = this.model;
    const node = stream.node;
    if (!model || !node || stream.closed) return false;
    state.subscriptionChanged = false;
    let resources: ReadonlyMap<string, EncodedResource>;
    try {
      resources = this.generator.generate(model, node, state.typeUrl, state.subscription);
    } catch (error) {
      stream.log.error({ err: error, type: state.short, model: model.version }, 'resource generation failed; the client keeps what it has');
      return false;
    }
    const snapshot = this.snapshotOf(model, state.typeUrl, resources);
    if (state.sentVersion === undefined && state.resumedVersion !== undefined) {
      const resumed = state.resumedVersion === snapshot.version;
      state.resumedVersion = undefined;
      if (resumed) {
        this.resume(stream, state, snapshot);
        return false;
      }
    }
    if (!force && snapshot.version === state.sentVersion) return false;
    if (this.buffered >= this.maxBufferedBytes && !this.bypassingLimit) {
      this.wait(stream, state, since);
      return false;
    }
    this.send(stream, state, snapshot, since);
    return true;
  }

  /**
   * The client already holds `snapshot` (versions are content hashes, equal across server runs):
   * it is recorded as sent and acknowledged, as go-control-plane's cache leaves a request whose
   * version is current waiting for the next change. After a restart the fleet then costs its
   * requests, not the whole mesh sent to every agent again.
   */
  private resume(stream: AdsStream, state: TypeState, snapshot: ResourceSnapshot): void {
    state.sentVersion = snapshot.version;
    state.ackedVersion = snapshot.version;
    state.held = PARTIAL_TYPES.has(state.typeUrl) ? snapshot : undefined;
    state.resources = snapshot.resources.length;
    this.counters.resumed++;
    stream.log.debug({ type: state.short, version: snapshot.version }, 'client holds the current version; nothing sent');
  }

  private snapshotOf(model: MeshModel, typeUrl: ResourceTypeUrl, resources: ReadonlyMap<string, EncodedResource>): ResourceSnapshot {
    const cached = this.snapshots.get(resources);
    if (cached && cached.model === model) return cached.snapshot;
    if (this.internedModel !== model) {
      this.internedModel = model;
      this.interned = new Map();
    }
    const built = buildSnapshot(resources);
    const key = `${typeUrl}\u0000${built.version}`;
    let snapshot = this.interned.get(key);
    if (!snapshot) this.interned.set(key, (snapshot = built));
    this.snapshots.set(resources, { model, snapshot });
    return snapshot;
  }

  /**
   * Sends the snapshot: in full, or for RDS/EDS only the resources that differ from what the client
   * holds (new names included). The version is always that of the full set, so versions still
   * compare across clients and with what syncStatus reports. The response bytes, nonce included,
   * are shared by every stream that sends the same thing: a nonce only has to tell one stream's
   * responses of one type apart, and consecutive responses on a stream always differ in content.
   */
  private send(stream: AdsStream, state: TypeState, snapshot: ResourceSnapshot, since: number | undefined): void {
    const partial = PARTIAL_TYPES.has(state.typeUrl);
    const response = partial && state.held ? this.partialResponse(state.typeUrl, state.held, snapshot) : this.fullResponse(state.typeUrl, snapshot);
    const { nonce, count } = response;
    state.waiting = false;
    state.waitingSince = undefined;
    state.sentVersion = snapshot.version;
    state.held = partial ? snapshot : undefined;
    state.nonce = nonce;
    state.resources = snapshot.resources.length;
    state.sentAt = performance.now();
    this.counters.pushes++;
    const nodeId = stream.node!.id;
    const length = response.bytes.length;
    this.buffered += length;
    stream.buffered += length;
    stream.call.write(response.bytes, (error?: Error | null) => {
      if (!stream.closed) {
        this.buffered -= length;
        stream.buffered -= length;
      }
      this.resumeWaiting(false);
      if (error) return;
      const now = performance.now();
      if (since !== undefined) this.pushLatency.add(now - since);
      this.observer.pushed(nodeId, state.short, count, since === undefined ? 0 : (now - since) / 1000);
    });
    stream.log.debug({ type: state.short, version: snapshot.version, nonce, resources: count }, 'response sent');
  }

  /** Holds a due response until buffered bytes drain (or stall); resumeWaiting sends it then. */
  private wait(stream: AdsStream, state: TypeState, since: number | undefined): void {
    state.waiting = true;
    if (since !== undefined && (state.waitingSince === undefined || since < state.waitingSince)) state.waitingSince = since;
    this.waitingStreams.add(stream);
    this.stallTimer ??= setTimeout(() => {
      this.stallTimer = undefined;
      this.resumeWaiting(true);
    }, this.stallMs);
  }

  /**
   * Sends waiting responses, oldest first, while buffered bytes are under the limit; `stalled`
   * (nothing completed for stallMs) sends them all, so clients that stopped reading hold up no one.
   */
  private resumeWaiting(stalled: boolean): void {
    if (this.resuming || this.waitingStreams.size === 0) return;
    if (!stalled && this.stallTimer) {
      // A write completed: progress, so the stall clock starts over.
      clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
    }
    this.resuming = true;
    this.bypassingLimit = stalled;
    try {
      for (const stream of this.waitingStreams) {
        if (!stalled && this.buffered >= this.maxBufferedBytes) break;
        this.waitingStreams.delete(stream);
        if (stream.closed) continue;
        for (const state of stream.types.values()) {
          if (!state.waiting) continue;
          state.waiting = false;
          const since = state.waitingSince;
          state.waitingSince = undefined;
          this.respond(stream, state, state.sentVersion === undefined, since);
        }
      }
    } catch (error) {
      this.log.error({ err: error }, 'sending waiting responses failed');
    } finally {
      this.resuming = false;
      this.bypassingLimit = false;
    }
    if (this.waitingStreams.size > 0) {
      this.stallTimer ??= setTimeout(() => {
        this.stallTimer = undefined;
        this.resumeWaiting(true);
      }, this.stallMs);
    }
  }

  private fullResponse(typeUrl: ResourceTypeUrl, snapshot: ResourceSnapshot): SharedResponse {
    snapshot.full ??= this.encodeResponse(typeUrl, snapshot.version, snapshot.resources);
    return snapshot.full;
  }

  /** What differs from `held`, encoded once per pair: after one endpoint change most streams hold the same set. */
  private partialResponse(typeUrl: ResourceTypeUrl, held: ResourceSnapshot, snapshot: ResourceSnapshot): SharedResponse {
    snapshot.partialFrom ??= new WeakMap();
    let response = snapshot.partialFrom.get(held);
    if (!response) {
      const changed = changedResources(held, snapshot);
      response = changed.length === snapshot.resources.length ? this.fullResponse(typeUrl, snapshot) : this.encodeResponse(typeUrl, snapshot.version, changed);
      snapshot.partialFrom.set(held, response);
    }
    return response;
  }

  private encodeResponse(typeUrl: ResourceTypeUrl, version: string, resources: readonly EncodedResource[]): SharedResponse {
    const nonce = `${this.instance}.${(++this.nonceCounter).toString(36)}`;
    return { bytes: encodeDiscoveryResponse(version, encodeResourcesField(resources), typeUrl, nonce), nonce, count: resources.length };
  }

  private typeStatus(state: TypeState): TypeSyncStatus {
    let status: TypeSyncStatus['state'];
    if (state.sentVersion === undefined) status = 'NOT SENT';
    else if (state.nackedNonce !== undefined && state.nackedNonce === state.nonce) status = 'NACKED';
    else if (state.ackedVersion === state.sentVersion) status = 'SYNCED';
    else status = 'STALE';
    return {
      sent: state.sentVersion,
      acked: state.ackedVersion,
      nonce: state.nonce,
      resources: state.resources,
      lastNack: state.lastNack ? { ...state.lastNack } : undefined,
      state: status,
    };
  }
}
