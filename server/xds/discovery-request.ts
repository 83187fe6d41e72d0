// Reads DiscoveryRequest on the server without decoding what usually repeats: the resource names
// stay as their encoded bytes, are compared with the previous request's, and decoded only on change.
//
// Why: Envoy repeats every subscribed name in every ACK; with 1000 EDS names that is 1000 strings
// to allocate per ACK per stream, while comparing the bytes is one memcmp.
import type * as protobuf from 'protobufjs';
import { CONVERSION_OPTIONS, resourceTypes } from '../../lib/xds/protos';
import { WireReader } from '../../lib/xds/wire';
import { DiscoveryRequestField, StatusField } from '../../lib/xds/field-numbers';

/** DiscoveryRequest.node as protobufjs decodes it (proto field names; metadata is a Struct object). */
export interface RequestNode {
  id?: string;
  cluster?: string;
  metadata?: unknown;
  locality?: { region?: string; zone?: string; sub_zone?: string };
}

export interface DiscoveryRequestView {
  versionInfo: string;
  typeUrl: string;
  responseNonce: string;
  node?: RequestNode;
  /** google.rpc.Status of a NACK. */
  errorDetail?: { code: number; message: string };
  /** The resource_names entries exactly as encoded: equal bytes mean equal name lists. */
  namesKey: Buffer;
}


const EMPTY = Buffer.alloc(0);

let nodeType: protobuf.Type | undefined;

function decodeNode(bytes: Uint8Array): RequestNode {
  nodeType ??= resourceTypes().lookupType('envoy.config.core.v3.Node');
  return nodeType.toObject(nodeType.decode(bytes), CONVERSION_OPTIONS) as RequestNode;
}

function decodeStatus(bytes: Buffer): { code: number; message: string } {
  const reader = new WireReader(bytes);
  const status = { code: 0, message: '' };
  while (!reader.done()) {
    const tag = reader.uint32();
    // int32 code: a negative value would be sign-extended; |0 brings it back.
    if (tag >>> 3 === StatusField.code && (tag & 7) === 0) status.code = reader.uint32() | 0;
    else if (tag >>> 3 === StatusField.message && (tag & 7) === 2) status.message = reader.string();
    else reader.skip(tag & 7);
  }
  return status;
}

/** Throws with the position of the problem when the bytes are not a DiscoveryRequest. */
export function parseDiscoveryRequest(bytes: Buffer): DiscoveryRequestView {
  const reader = new WireReader(bytes);
  const view: DiscoveryRequestView = { versionInfo: '', typeUrl: '', responseNonce: '', namesKey: EMPTY };
  // Name entries are normally one contiguous run; if another field sits between them, the
  // entries are copied together so that the key still lists exactly the names in order.
  const nameRanges: [number, number][] = [];
  while (!reader.done()) {
    const start = reader.pos;
    const tag = reader.uint32();
    const field = tag >>> 3;
    const lengthDelimited = (tag & 7) === 2;
    if (field === DiscoveryRequestField.resource_names && lengthDelimited) {
      reader.skip(2);
      const last = nameRanges[nameRanges.length - 1];
      if (last && last[1] === start) last[1] = reader.pos;
      else nameRanges.push([start, reader.pos]);
    } else if (field === DiscoveryRequestField.version_info && lengthDelimited) view.versionInfo = reader.string();
    else if (field === DiscoveryRequestField.type_url && lengthDelimited) view.typeUrl = reader.string();
    else if (field === DiscoveryRequestField.response_nonce && lengthDelimited) view.responseNonce = reader.string();
    else if (field === DiscoveryRequestField.node && lengthDelimited) view.node = decodeNode(reader.bytes());
    else if (field === DiscoveryRequestField.error_detail && lengthDelimited) view.errorDetail = decodeStatus(reader.bytes());
    else reader.skip(tag & 7);
  }
  if (nameRanges.length === 1) view.namesKey = bytes.subarray(nameRanges[0]![0], nameRanges[0]![1]);
  else if (nameRanges.length > 1) view.namesKey = Buffer.concat(nameRanges.map(([from, to]) => bytes.subarray(from, to)));
  return view;
}

/** The names listed in a `namesKey`. */
export function decodeNames(namesKey: Buffer): string[] {
  const reader = new WireReader(namesKey);
  const names: string[] = [];
  while (!reader.done()) {
    reader.uint32();
    names.push(reader.string());
  }
  return names;
}
