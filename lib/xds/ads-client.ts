// A reusable xDS v3 ADS client (state of the world): per-type subscriptions, validation, ACK/NACK,
// last accepted version per type, and reconnection with backoff. Used by mesh-agent, tests and benchmarks.
//
// Responses are read with a small protobuf reader instead of proto-loader: it only looks at the
// envelope, so with `decode: false` a response of 1000 clusters costs microseconds, which is what
// lets one process run a thousand clients against a server.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type * as protobuf from 'protobufjs';
import pino from 'pino';
import type { Logger } from '../log';
import { EncodedResourceMap, type DecodedResource } from './encoded-resource-map';
import { resourceTypes, TypeUrl, unpackAny, type PackedAny } from './protos';
import { jsonToStruct } from './struct';
import { encodeMessage, encodeRepeatedString, lengthDelimitedTag, WireReader, type WirePart } from './wire';
import { AnyField, DiscoveryRequestField, DiscoveryResponseField, StatusField } from './field-numbers';

export type { DecodedResource } from './encoded-resource-map';

/** Ping the server after this long without traffic on the channel (see the client options below). */
const KEEPALIVE_TIME_MS = 30_000;
/** A ping without an answer after this long closes the connection. */
const KEEPALIVE_TIMEOUT_MS = 10_000;

export interface AdsClientNode {
  id: string;
  cluster?: string;
  metadata?: Record<string, unknown>;
  /** Where the client runs; the server orders locality failover priorities from it. */
  locality?: { region?: string; zone?: string; sub_zone?: string };
}

export interface BackoffOptions {
  /** First retry delay; default 250 ms. */
  initialMs?: number;
  /** Delay cap; default 30 s. */
  maxMs?: number;
  /** Growth per failed attempt; default 2. */
  multiplier?: number;
  /** Relative spread around the delay, 0..1; default 0.2 (±20 %). */
  jitter?: number;
}

export interface AdsClientOptions {
  /** host:port of the ADS server. */
  target: string;
  node: AdsClientNode;
  /** Default: insecure (plaintext, as on the dev port 15010). */
  credentials?: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  logger?: Logger;
  /** Returns an error message to NACK a response; the previous resources are kept. */
  validate?: (typeUrl: string, resources: ReadonlyMap<string, DecodedResource>) => string | undefined;
  /** false: do not decode resources, ACK every response (benchmarks); updates carry only a count. */
  decode?: boolean;
  backoff?: BackoffOptions;
  /** node.user_agent_name; default `mesh-ads-client`. */
  userAgent?: string;
  /** Keep each accepted resource's Any bytes too (`encodedResources`), for persisting exactly what was accepted. */
  keepEncoded?: boolean;
  /**
   * false: once an update's listeners have run, hold accepted resources only as their Any bytes
   * (implies `keepEncoded`); `resources` then decodes on each read. For a client that compiles
   * each update and would otherwise keep every decoded object alive (mesh-agent). Default true.
   */
  retainDecoded?: boolean;
}

export interface AdsUpdate {
  typeUrl: string;
  version: string;
  nonce: string;
  /** Resources in this response. */
  count: number;
  /** Every resource the client now holds of this type, by name; empty with `decode: false`. */
  resources: ReadonlyMap<string, DecodedResource>;
  /** With `keepEncoded`: the Any of every resource held, by name, as received. */
  encoded?: ReadonlyMap<string, PackedAny>;
}

export interface AdsNack {
  typeUrl: string;
  /** The version refused. */
  version: string;
  nonce: string;
  message: string;
}

export interface AdsClientEvents {
  update: [update: AdsUpdate];
  nack: [nack: AdsNack];
  /** The first response arrived on a new stream. */
  connected: [];
  /** The stream ended and a new one starts after `retryMs`; close() ends it without this event. */
  disconnected: [status: grpc.StatusObject, retryMs: number];
}

export interface AdsClientStats {
  responses: number;
  acks: number;
  nacks: number;
  /** Streams started after the first one. */
  reconnects: number;
}

interface TypeState {
  readonly typeUrl: string;
  names: readonly string[] | '*';
  /** Last accepted version_info; sent again on a new stream, as Envoy does. */
  version?: string;
  /** Latest nonce received on the current stream. */
  nonce?: string;
  resources: ReadonlyMap<string, DecodedResource>;
  /** With `keepEncoded`: the received Any of each resource in `resources`. */
  encoded: Map<string, PackedAny>;
  /** Explicit names went out on this stream, so a later wildcard must be spelled `*`. */
  namedOnStream: boolean;
  /** resource_names as encoded for `encodedNamesOf`: ACKs repeat them, so they are encoded once. */
  encodedNames?: Buffer;
  encodedNamesOf?: readonly string[];
}

interface ParsedResponse {
  version: string;
  typeUrl: string;
  nonce: string;
  count: number;
  resources: PackedAny[];
}

/** google.rpc.Code INVALID_ARGUMENT, what Envoy puts in error_detail when it rejects config. */
const NACK_CODE = 3;
/** Legacy wildcard (what Envoy sends for LDS/CDS) and the explicit form. */
const NO_NAMES: readonly string[] = [];
const EXPLICIT_WILDCARD: readonly string[] = ['*'];
const DEFAULT_MAX_RECEIVE_BYTES = 64 * 1024 * 1024;
const EMPTY_BUFFER = Buffer.alloc(0);

let silent: Logger | undefined;
function silentLog(): Logger {
  silent ??= pino({ level: 'silent' });
  return silent;
}

let nodeType: protobuf.Type | undefined;
function encodeNode(node: AdsClientNode, userAgent: string): Buffer {
  nodeType ??= resourceTypes().lookupType('envoy.config.core.v3.Node');
  const message = nodeType.fromObject({
    id: node.id,
    cluster: node.cluster ?? '',
    metadata: jsonToStruct(node.metadata ?? {}),
    ...(node.locality ? { locality: node.locality } : {}),
    user_agent_name: userAgent,
  });
  const bytes = nodeType.encode(message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The ADS method's path, spelled out: loading ads.proto through proto-loader only to read it cost
 * every agent megabytes of descriptors (protos.test.ts checks it against the service definition).
 */
export const ADS_STREAM_METHOD_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

/** Reads the DiscoveryResponse envelope; resources are kept as Any views into `bytes` when asked. */
export function parseDiscoveryResponse(bytes: Buffer, keepResources: boolean): ParsedResponse {
  const reader = new WireReader(bytes);
  const response: ParsedResponse = { version: '', typeUrl: '', nonce: '', count: 0, resources: [] };
  while (!reader.done()) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if ((tag & 7) !== 2) {
      reader.skip(tag & 7);
      continue;
    }
    if (field === DiscoveryResponseField.resources) {
      response.count++;
      if (keepResources) response.resources.push(readAny(reader));
      else reader.skip(2);
    } else if (field === DiscoveryResponseField.version_info) response.version = reader.string();
    else if (field === DiscoveryResponseField.type_url) response.typeUrl = reader.string();
    else if (field === DiscoveryResponseField.nonce) response.nonce = reader.string();
    else reader.skip(2);
  }
  return response;
}

function readAny(outer: WireReader): PackedAny {
  const length = outer.length();
  const any = new WireReader(outer.buffer, outer.pos, outer.pos + length);
  outer.pos += length;
  let typeUrl = '';
  let value: Buffer = EMPTY_BUFFER;
  while (!any.done()) {
    const tag = any.uint32();
    if (tag === lengthDelimitedTag(AnyField.type_url)) typeUrl = any.string();
    else if (tag === lengthDelimitedTag(AnyField.value)) value = any.bytes();
    else any.skip(tag & 7);
  }
  return { type_url: typeUrl, value };
}

function resourceName(resource: DecodedResource): string | undefined {
  const name = resource.name ?? resource.cluster_name;
  return typeof name === 'string' && name !== '' ? name : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class AdsClient extends EventEmitter<AdsClientEvents> {
  private readonly grpcClient: grpc.Client;
  /** node, encoded once: it goes out on the first request of every stream. */
  private readonly encodedNode: Buffer;
  private readonly log: Logger;
  private readonly validate?: AdsClientOptions['validate'];
  private readonly decode: boolean;
  private readonly keepEncoded: boolean;
  private readonly retainDecoded: boolean;
  private readonly backoff: Required<BackoffOptions>;
  private readonly types = new Map<string, TypeState>();
  private call?: grpc.ClientDuplexStream<Buffer, Buffer>;
  private nodeSent = false;
  private connected = false;
  private attempt = 0;
  private streamsStarted = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;
  private readonly counters: AdsClientStats = { responses: 0, acks: 0, nacks: 0, reconnects: 0 };

  constructor(options: AdsClientOptions) {
    super();
    this.encodedNode = encodeNode(options.node, options.userAgent ?? 'mesh-ads-client');
    this.log = options.logger ?? silentLog();
    this.validate = options.validate;
    this.decode = options.decode ?? true;
    this.retainDecoded = options.retainDecoded ?? true;
    this.keepEncoded = (options.keepEncoded ?? false) || !this.retainDecoded;
    this.backoff = {
      initialMs: options.backoff?.initialMs ?? 250,
      maxMs: options.backoff?.maxMs ?? 30_000,
      multiplier: options.backoff?.multiplier ?? 2,
      jitter: Math.min(1, Math.max(0, options.backoff?.jitter ?? 0.2)),
    };
    // The channel's own reconnection backoff follows ours, so a retry finds it ready to connect.
    this.grpcClient = new grpc.Client(options.target, options.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': this.backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': this.backoff.maxMs,
      'grpc.max_receive_message_length': DEFAULT_MAX_RECEIVE_BYTES,
      // A stream whose server vanished without a FIN or RST (a host lost, a stateful firewall or
      // NAT dropping the flow) would otherwise wait forever on its last config: HTTP/2 pings find
      // a dead connection within time + timeout, and the stream is then reopened with backoff.
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
      ...options.channelOptions,
    });
  }

  /**
   * Sets the whole subscription of one type (SotW: the list replaces the previous one); `*` asks for
   * everything the server decides this node should have. Opens the stream on first use.
   */
  subscribe(typeUrl: string, names: readonly string[] | '*'): void {
    if (this.closed) throw new Error('AdsClient is closed');
    let state = this.types.get(typeUrl);
    if (state && sameNames(state.names, names)) return;
    if (!state) {
      state = { typeUrl, names: names === '*' ? '*' : [...names], resources: new Map(), encoded: new Map(), namedOnStream: false };
      this.types.set(typeUrl, state);
    } else {
      state.names = names === '*' ? '*' : [...names];
      if (state.names !== '*') this.dropUnsubscribed(state);
    }
    if (this.call) this.sendRequest(state);
    else if (!this.reconnectTimer) this.startStream();
  }

  /** Last accepted version of a type, undefined before the first accepted response. */
  version(typeUrl: string): string | undefined {
    return this.types.get(typeUrl)?.version;
  }

  /** Resources held of a type (last accepted state); empty with `decode: false`. */
  resources(typeUrl: string): ReadonlyMap<string, DecodedResource> {
    return this.types.get(typeUrl)?.resources ?? new Map();
  }

  /** The Any of each resource held, as received; empty unless `keepEncoded`. */
  encodedResources(typeUrl: string): ReadonlyMap<string, PackedAny> {
    return this.types.get(typeUrl)?.encoded ?? new Map();
  }

  isConnected(): boolean {
    return this.connected;
  }

  stats(): AdsClientStats {
    return { ...this.counters };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const call = this.call;
    this.call = undefined;
    this.connected = false;
    call?.cancel();
    this.grpcClient.close();
  }

  private startStream(): void {
    this.reconnectTimer = undefined;
    if (this.closed || this.call) return;
    if (this.streamsStarted++ > 0) this.counters.reconnects++;
    const call = this.grpcClient.makeBidiStreamRequest<Buffer, Buffer>(ADS_STREAM_METHOD_PATH, (b) => b, (b) => b);
    this.call = call;
    this.nodeSent = false;
    this.connected = false;
    call.on('data', (bytes: Buffer) => {
      if (call === this.call) this.onResponse(bytes);
    });
    call.on('status', (status: grpc.StatusObject) => {
      if (call === this.call) this.onStreamEnded(status);
    });
    // The outcome arrives as 'status'; without a listener an 'error' would throw.
    call.on('error', (error: Error) => this.log.debug({ err: error }, 'ADS stream error'));
    for (const state of this.types.values()) {
      state.nonce = undefined;
      state.namedOnStream = false;
      this.sendRequest(state);
    }
  }

  private onStreamEnded(status: grpc.StatusObject): void {
    this.call = undefined;
    this.connected = false;
    // Exponential growth with jitter, so that a fleet cut off together does not return in lockstep.
    const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * this.backoff.multiplier ** this.attempt);
    const delay = base * (1 - this.backoff.jitter + 2 * this.backoff.jitter * Math.random());
    this.attempt++;
    this.log.info({ code: status.code, details: status.details, retryMs: Math.round(delay) }, 'ADS stream ended; reconnecting');
    this.reconnectTimer = setTimeout(() => this.startStream(), delay);
    this.emitSafely('disconnected', status, delay);
  }

  private sendRequest(state: TypeState, reply?: { nonce: string; error?: string }): void {
    const call = this.call;
    if (!call) return;
    let names: readonly string[];
    if (state.names === '*') names = state.namedOnStream ? EXPLICIT_WILDCARD : NO_NAMES;
    else {
      names = state.names;
      state.namedOnStream = true;
    }
    if (state.encodedNamesOf !== names) {
      state.encodedNames = encodeRepeatedString(DiscoveryRequestField.resource_names, names);
      state.encodedNamesOf = names;
    }
    const parts: WirePart[] = [
      { field: DiscoveryRequestField.version_info, text: state.version ?? '' },
      { raw: state.encodedNames! },
      { field: DiscoveryRequestField.type_url, text: state.typeUrl },
      { field: DiscoveryRequestField.response_nonce, text: reply?.nonce ?? state.nonce ?? '' },
    ];
    if (reply?.error !== undefined) {
      const status = encodeMessage([{ field: StatusField.code, varint: NACK_CODE }, { field: StatusField.message, text: reply.error }]);
      parts.push({ field: DiscoveryRequestField.error_detail, bytes: status });
    }
    // Only the first request of a stream carries the node (allowed by the protocol, saves bytes).
    if (!this.nodeSent) {
      parts.push({ field: DiscoveryRequestField.node, bytes: this.encodedNode });
      this.nodeSent = true;
    }
    call.write(encodeMessage(parts));
  }

  private onResponse(bytes: Buffer): void {
    let response: ParsedResponse;
    try {
      response = parseDiscoveryResponse(bytes, this.decode);
    } catch (error) {
      // Without a nonce there is nothing to NACK; a new stream starts from a clean state.
      this.log.error({ err: error }, 'unreadable DiscoveryResponse; restarting the stream');
      this.call?.cancel();
      return;
    }
    this.counters.responses++;
    this.attempt = 0;
    if (!this.connected) {
      this.connected = true;
      this.emitSafely('connected');
    }
    const state = this.types.get(response.typeUrl);
    if (!state) {
      this.log.warn({ type: response.typeUrl }, 'response for a type this client did not subscribe to; ignored');
      return;
    }
    state.nonce = response.nonce;

    if (!this.decode) {
      state.version = response.version;
      this.accept(state, response, state.resources);
      return;
    }
    const decoded = this.decodeResources(state, response);
    if (typeof decoded === 'string') return this.reject(state, response, decoded);
    const problem = this.check(state.typeUrl, decoded.resources);
    if (problem !== undefined) return this.reject(state, response, problem);
    state.version = response.version;
    state.resources = decoded.resources;
    state.encoded = decoded.encoded;
    this.accept(state, response, decoded.resources);
    // The update's listeners have compiled what they need; from now on only the bytes are held.
    if (decoded.resources instanceof EncodedResourceMap) decoded.resources.releaseDecoded();
  }

  private check(typeUrl: string, resources: ReadonlyMap<string, DecodedResource>): string | undefined {
    if (!this.validate) return undefined;
    try {
      return this.validate(typeUrl, resources);
    } catch (error) {
      return `validation failed: ${errorMessage(error)}`;
    }
  }

  /** NACK: the previous version stays in force and is what version_info reports. */
  private reject(state: TypeState, response: ParsedResponse, message: string): void {
    this.counters.nacks++;
    this.log.warn({ type: state.typeUrl, version: response.version, message }, 'rejecting configuration (NACK)');
    this.sendRequest(state, { nonce: response.nonce, error: message });
    this.emitSafely('nack', { typeUrl: state.typeUrl, version: response.version, nonce: response.nonce, message });
  }

  private accept(state: TypeState, response: ParsedResponse, resources: ReadonlyMap<string, DecodedResource>): void {
    // Applied first, then acknowledged: an ACK means the listeners have the new state.
    const update: AdsUpdate = { typeUrl: state.typeUrl, version: response.version, nonce: response.nonce, count: response.count, resources };
    if (this.keepEncoded) update.encoded = state.encoded;
    this.emitSafely('update', update);
    this.counters.acks++;
    this.sendRequest(state, { nonce: response.nonce });
  }

  /**
   * The state after this response, or why it is invalid. Listener and Cluster responses carry the
   * complete set; for other types a response may carry only some resources, so the rest is kept
   * (Envoy's xDS protocol, "grouping resources into responses").
   */
  private decodeResources(state: TypeState, response: ParsedResponse): { resources: ReadonlyMap<string, DecodedResource>; encoded: Map<string, PackedAny> } | string {
    const complete = state.typeUrl === TypeUrl.Listener || state.typeUrl === TypeUrl.Cluster;
    const wanted = state.names === '*' ? undefined : new Set(state.names);
    const next = new Map<string, DecodedResource>();
    const encoded = new Map<string, PackedAny>();
    if (!complete) {
      if (this.retainDecoded) {
        for (const [name, resource] of state.resources) {
          if (wanted && !wanted.has(name)) continue;
          next.set(name, resource);
          const any = state.encoded.get(name);
          if (any) encoded.set(name, any);
        }
      } else {
        // Kept resources stay encoded; they are decoded only if someone reads them (a validator).
        for (const [name, any] of state.encoded) if (!wanted || wanted.has(name)) encoded.set(name, any);
      }
    }
    const seen = new Set<string>();
    for (let i = 0; i < response.resources.length; i++) {
      const any = response.resources[i]!;
      if (any.type_url !== response.typeUrl) return `resource ${i} has type ${any.type_url}, the response is for ${response.typeUrl}`;
      let resource: DecodedResource;
      try {
        resource = unpackAny<DecodedResource>(any);
      } catch (error) {
        return `resource ${i} does not decode: ${errorMessage(error)}`;
      }
      const name = resourceName(resource);
      if (name === undefined) return `resource ${i} has no name`;
      if (seen.has(name)) return `resource ${name} appears twice in one response`;
      seen.add(name);
      // Resources nobody asked for are ignored, as the protocol tells clients to.
      if (!wanted || wanted.has(name)) {
        next.set(name, resource);
        // A copy: the Any is a view into the whole response, which should not stay alive for it.
        // The state's type URL (equal, checked above) rather than one string per resource read off the wire.
        if (this.keepEncoded) encoded.set(name, { type_url: state.typeUrl, value: Buffer.from(any.value) });
      }
    }
    // Until released after the update, the resources just decoded are served as they are.
    return { resources: this.retainDecoded ? next : new EncodedResourceMap(encoded, next), encoded };
  }

  /** A new map rather than deleting in place: listeners may still hold the one they were given. */
  private dropUnsubscribed(state: TypeState): void {
    if (state.names === '*') return;
    const wanted = new Set(state.names);
    const keptEncoded = new Map<string, PackedAny>();
    for (const [name, any] of state.encoded) if (wanted.has(name)) keptEncoded.set(name, any);
    state.encoded = keptEncoded;
    if (!this.retainDecoded) {
      state.resources = new EncodedResourceMap(keptEncoded);
      return;
    }
    const kept = new Map<string, DecodedResource>();
    for (const [name, resource] of state.resources) if (wanted.has(name)) kept.set(name, resource);
    state.resources = kept;
  }

  /** Listener errors are the caller's bugs; they must not break the protocol state machine. */
  private emitSafely<K extends keyof AdsClientEvents>(event: K, ...args: AdsClientEvents[K]): void {
    try {
      (this.emit as (event: K, ...args: AdsClientEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.log.error({ err: error, event }, 'AdsClient listener threw');
    }
  }
}

function sameNames(a: readonly string[] | '*', b: readonly string[] | '*'): boolean {
  if (a === '*' || b === '*') return a === b;
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((name) => set.has(name));
}
