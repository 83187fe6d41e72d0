// Turns one config file's bytes into validated Istio resources, or into issues that say exactly
// where and why it is wrong; the store then rejects any file with an error as a whole.
import { open } from 'node:fs/promises';
import { isScalar, parseAllDocuments, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { describeType, schemaIssues } from '../../lib/config/schema-issues';
import { KINDS } from '../kinds';
import { severityOf } from '../kinds/common';
import { formatPath, type ConfigIssue } from '../../lib/config/issue';
import type { KindDefinition } from './kind';
import { DEFAULT_NAMESPACE, type ConfigResource, type ResourceMetadata } from './resource';

/** Larger files are refused unread: nobody writes 8 MiB of routing rules by hand. */
export const DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024;

export interface ParseOptions {
  /** Files larger than this many bytes are rejected before parsing. */
  maxBytes?: number;
  /** The kinds to accept; defaults to every kind in server/kinds. Tests pass their own. */
  kinds?: readonly KindDefinition[];
}

export interface ParsedFile {
  file: string;
  /** Resources of the documents that are valid; meaningless to serve when `issues` has an error. */
  resources: readonly ConfigResource[];
  issues: ConfigIssue[];
}

export function hasErrors(issues: readonly ConfigIssue[]): boolean {
  return issues.some((issue) => issue.severity === 'error');
}

/**
 * Reads and parses a file, refusing oversized files without reading them. `name` is how issues
 * and origins name the file (the CLI shows paths as the user typed them).
 */
export async function readConfigFile(path: string, options: ParseOptions = {}, name: string = path): Promise<ParsedFile> {
  const file = name;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) return { file, resources: [], issues: [tooLarge(file, size, maxBytes)] };
    // The file may grow between stat and read; parseConfigText checks the size again.
    const content = await handle.readFile();
    return parseConfigText(file, content, options);
  } finally {
    await handle.close();
  }
}

/** Parses a file's content (bytes as read, or text). */
export function parseConfigText(file: string, content: string | Uint8Array, options: ParseOptions = {}): ParsedFile {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  const size = typeof content === 'string' ? Buffer.byteLength(content, 'utf8') : content.byteLength;
  if (size > maxBytes) return { file, resources: [], issues: [tooLarge(file, size, maxBytes)] };

  const text = decodeText(file, content);
  if (typeof text !== 'string') return { file, resources: [], issues: [text] };

  const kinds = options.kinds ?? KINDS;
  const out = { file, resources: [] as ConfigResource[], issues: [] as ConfigIssue[] };
  // uniqueKeys: a repeated key silently overriding the first is exactly the kind of typo to catch.
  const documents = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  documents.forEach((doc, index) => {
    const document = index + 1;
    if (doc.errors.length > 0) {
      for (const error of doc.errors) out.issues.push(yamlIssue(file, document, error, 'error'));
      return;
    }
    for (const warning of doc.warnings) out.issues.push(yamlIssue(file, document, warning, 'warning'));
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) return;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (error) {
      // Unresolved aliases and alias bombs only surface when the document is materialised.
      out.issues.push({ severity: 'error', code: 'yaml-syntax', message: `YAML error: ${(error as Error).message}`, file, document, path: '' });
      return;
    }
    const context: DocumentContext = { file, document, kinds, issues: out.issues, resources: out.resources };
    if (isMapping(value) && value.kind === 'List' && value.apiVersion === 'v1') readList(context, value);
    else readResource(context, value, '');
  });
  return out;
}

interface DocumentContext {
  file: string;
  document: number;
  kinds: readonly KindDefinition[];
  issues: ConfigIssue[];
  resources: ConfigResource[];
}

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function tooLarge(file: string, size: number, maxBytes: number): ConfigIssue {
  return {
    severity: 'error',
    code: 'file-too-large',
    message: `file is ${size} bytes, over the ${describeBytes(maxBytes)} limit for a config file; it was not read`,
    file,
    path: '',
  };
}

function describeBytes(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes}-byte`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The text, or an issue when the content is not UTF-8 text (a binary dropped into the directory). */
function decodeText(file: string, content: string | Uint8Array): string | ConfigIssue {
  const binary = (detail: string): ConfigIssue => ({
    severity: 'error',
    code: 'binary-file',
    message: `file is not UTF-8 text (${detail}); config files must be YAML`,
    file,
    path: '',
  });
  if (typeof content === 'string') {
    const nul = content.indexOf('\u0000');
    return nul >= 0 ? binary(`NUL character at offset ${nul}`) : content;
  }
  const nul = content.indexOf(0);
  if (nul >= 0) return binary(`NUL byte at offset ${nul}`);
  try {
    return utf8.decode(content);
  } catch {
    return binary('invalid UTF-8 byte sequence');
  }
}

function yamlIssue(file: string, document: number, error: YAMLError, severity: 'error' | 'warning'): ConfigIssue {
  // With prettyErrors the message carries " at line L, column C:" and a source excerpt; we
  // put the position in front in our own words and keep only the first sentence.
  const first = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  const pos = error.linePos?.[0];
  const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
  return { severity, code: severity === 'error' ? 'yaml-syntax' : 'yaml-warning', message: `YAML ${severity === 'error' ? 'syntax error' : 'warning'}${where}: ${first}`, file, document, path: '' };
}

function readList(context: DocumentContext, list: Mapping): void {
  for (const key of Object.keys(list)) {
    if (!['apiVersion', 'kind', 'metadata', 'items'].includes(key)) {
      pushIssue(context, undefined, { code: 'unknown-field', path: key, message: `unknown field "${key}" in a List`, value: list[key] });
    }
  }
  if (!Array.isArray(list.items)) {
    pushIssue(context, undefined, { code: 'invalid-type', path: 'items', message: `expected a list of resources, found ${describeType(list.items)}`, value: list.items });
    return;
  }
  list.items.forEach((item, i) => readResource(context, item, `items[${i}]`));
}

const TOP_LEVEL_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);
const METADATA_FIELDS = new Set(['name', 'namespace', 'labels', 'annotations']);
// Fields the Kubernetes API server fills in: tolerated (and ignored) so that YAML exported with
// `kubectl get -o yaml` from an Istio cluster can be dropped in unchanged.
const SERVER_MANAGED_METADATA = new Set(['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'ownerReferences', 'finalizers', 'selfLink']);

interface IssueFields {
  code: string;
  path: string;
  message: string;
  value?: unknown;
}

interface Identity {
  kind?: string;
  namespace?: string;
  name?: string;
}

function pushIssue(context: DocumentContext, identity: Identity | undefined, fields: IssueFields, severity: 'error' | 'warning' = 'error'): void {
  context.issues.push({ severity, file: context.file, document: context.document, ...identity, ...fields });
}

function join(prefix: string, path: string): string {
  if (!prefix) return path;
  if (!path) return prefix;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}

function readResource(context: DocumentContext, value: unknown, prefix: string): void {
  if (!isMapping(value)) {
    pushIssue(context, undefined, { code: 'not-a-mapping', path: prefix, message: `a resource must be a mapping with apiVersion, kind, metadata and spec, found ${describeType(value)}`, value });
    return;
  }
  const before = context.issues.length;
  const identity: Identity = {};
  if (typeof value.kind === 'string') identity.kind = value.kind;
  const rawMetadata = value.metadata;
  if (isMapping(rawMetadata)) {
    if (typeof rawMetadata.name === 'string') identity.name = rawMetadata.name;
    identity.namespace = typeof rawMetadata.namespace === 'string' ? rawMetadata.namespace : DEFAULT_NAMESPACE;
  }

  for (const key of Object.keys(value)) {
    if (!TOP_LEVEL_FIELDS.has(key)) {
      pushIssue(context, identity, { code: 'unknown-field', path: join(prefix, formatPath([key])), message: `unknown field "${key}"; a resource has only apiVersion, kind, metadata, spec and status`, value: value[key] });
    }
  }

  const definition = resolveKind(context, identity, value, prefix);
  const metadata = readMetadata(context, identity, rawMetadata, join(prefix, 'metadata'));
  if (!definition || !metadata) return;

  const rawSpec = value.spec ?? {};
  const specPrefix = join(prefix, 'spec');
  const result = definition.spec.safeParse(rawSpec, { reportInput: true });
  if (!result.success) {
    for (const issue of result.error.issues) convertZodIssue(context, identity, specPrefix, [], issue);
    return;
  }
  runCheck(context, identity, definition, result.data, specPrefix);
  if (context.issues.slice(before).some((issue) => issue.severity === 'error')) return;

  context.resources.push({
    apiVersion: value.apiVersion as string,
    kind: definition.kind,
    metadata,
    spec: result.data,
    origin: { file: context.file, document: context.document },
  });
}

function resolveKind(context: DocumentContext, identity: Identity, value: Mapping, prefix: string): KindDefinition | undefined {
  const { apiVersion, kind } = value;
  let ok = true;
  if (typeof apiVersion !== 'string') {
    pushIssue(context, identity, apiVersion === undefined
      ? { code: 'missing-field', path: join(prefix, 'apiVersion'), message: 'required field is missing' }
      : { code: 'invalid-type', path: join(prefix, 'apiVersion'), message: `expected string, found ${describeType(apiVersion)}`, value: apiVersion });
    ok = false;
  }
  if (typeof kind !== 'string') {
    pushIssue(context, identity, kind === undefined
      ? { code: 'missing-field', path: join(prefix, 'kind'), message: 'required field is missing' }
      : { code: 'invalid-type', path: join(prefix, 'kind'), message: `expected string, found ${describeType(kind)}`, value: kind });
    ok = false;
  }
  if (!ok) return undefined;
  const apiVersionText = apiVersion as string;
  const kindText = kind as string;

  const slash = apiVersionText.indexOf('/');
  const group = slash > 0 ? apiVersionText.slice(0, slash) : '';
  const version = slash > 0 ? apiVersionText.slice(slash + 1) : '';
  const sameKind = context.kinds.filter((k) => k.kind === kindText);
  const found = sameKind.find((k) => k.group === group && k.versions.includes(version));
  if (found) return found;

  if (sameKind.length > 0) {
    const accepted = sameKind.flatMap((k) => k.versions.map((v) => `${k.group}/${v}`));
    pushIssue(context, identity, {
      code: 'unknown-api-version',
      path: join(prefix, 'apiVersion'),
      message: `kind ${kindText} is not served at this apiVersion; accepted: ${accepted.join(', ')}`,
      value: apiVersionText,
    });
    return undefined;
  }
  const suggestion = closestKind(kindText, context.kinds);
  const hint = suggestion ? ` (did you mean ${suggestion}?)` : '';
  pushIssue(context, identity, {
    code: 'unknown-kind',
    path: join(prefix, 'kind'),
    message: `unknown kind for apiVersion "${apiVersionText}"${hint}; accepted: ${describeKinds(context.kinds)}`,
    value: kindText,
  });
  return undefined;
}

/** `networking.istio.io/{v1alpha3,v1beta1,v1}: VirtualService, DestinationRule; security...`. */
function describeKinds(kinds: readonly KindDefinition[]): string {
  if (kinds.length === 0) return 'none';
  const groups = new Map<string, string[]>();
  for (const k of kinds) {
    const versions = k.versions.length === 1 ? k.versions[0]! : `{${k.versions.join(',')}}`;
    const key = `${k.group}/${versions}`;
    groups.set(key, [...(groups.get(key) ?? []), k.kind]);
  }
  return [...groups].map(([key, names]) => `${key}: ${names.join(', ')}`).join('; ');
}

/** A known kind within two edits (case ignored) of what was written: the likely typo. */
function closestKind(written: string, kinds: readonly KindDefinition[]): string | undefined {
  let best: { kind: string; distance: number } | undefined;
  for (const k of kinds) {
    const distance = editDistance(written.toLowerCase(), k.kind.toLowerCase());
    if (distance <= 2 && (!best || distance < best.distance)) best = { kind: k.kind, distance };
  }
  return best?.kind;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

// Kubernetes object names (DNS-1123 subdomain) and namespaces (DNS-1123 label), as Istio checks them.
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// Kubernetes label/annotation keys: optional DNS subdomain prefix, then a name of at most 63 chars.
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function qualifiedKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) return `key prefix "${prefix}" must be a lowercase DNS subdomain`;
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) return 'key name must be 1-63 characters of letters, digits, "-", "_" or ".", starting and ending with a letter or digit';
  return undefined;
}

function readMetadata(context: DocumentContext, identity: Identity, raw: unknown, path: string): ResourceMetadata | undefined {
  if (!isMapping(raw)) {
    pushIssue(context, identity, raw === undefined
      ? { code: 'missing-field', path, message: 'required field is missing (metadata.name is required)' }
      : { code: 'invalid-type', path, message: `expected a mapping, found ${describeType(raw)}`, value: raw });
    return undefined;
  }
  const before = context.issues.length;
  for (const key of Object.keys(raw)) {
    if (!METADATA_FIELDS.has(key) && !SERVER_MANAGED_METADATA.has(key)) {
      pushIssue(context, identity, { code: 'unknown-field', path: join(path, formatPath([key])), message: `unknown field "${key}"; metadata has name, namespace, labels and annotations`, value: raw[key] });
    }
  }

  const name = raw.name;
  if (typeof name !== 'string') {
    pushIssue(context, identity, name === undefined || name === null
      ? { code: 'missing-field', path: join(path, 'name'), message: 'required field is missing' }
      : { code: 'invalid-type', path: join(path, 'name'), message: `expected string, found ${describeType(name)}`, value: name });
  } else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    pushIssue(context, identity, { code: 'invalid-name', path: join(path, 'name'), message: 'a name must be a DNS-1123 subdomain: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters', value: name });
  }

  let namespace = DEFAULT_NAMESPACE;
  const rawNamespace = raw.namespace;
  if (rawNamespace !== undefined && rawNamespace !== null) {
    if (typeof rawNamespace !== 'string') {
      pushIssue(context, identity, { code: 'invalid-type', path: join(path, 'namespace'), message: `expected string, found ${describeType(rawNamespace)}`, value: rawNamespace });
    } else if (rawNamespace.length > 63 || !DNS1123_LABEL.test(rawNamespace)) {
      pushIssue(context, identity, { code: 'invalid-name', path: join(path, 'namespace'), message: 'a namespace must be a DNS-1123 label: lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters', value: rawNamespace });
    } else {
      namespace = rawNamespace;
    }
  }

  const labels = readStringMap(context, identity, raw.labels, join(path, 'labels'), true);
  const annotations = readStringMap(context, identity, raw.annotations, join(path, 'annotations'), false);
  if (context.issues.length > before || typeof name !== 'string') return undefined;
  return { name, namespace, labels, annotations };
}

function readStringMap(context: DocumentContext, identity: Identity, raw: unknown, path: string, isLabels: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw === undefined || raw === null) return out;
  if (!isMapping(raw)) {
    pushIssue(context, identity, { code: 'invalid-type', path, message: `expected a mapping of strings, found ${describeType(raw)}`, value: raw });
    return out;
  }
  for (const [key, value] of Object.entries(raw)) {
    const entryPath = join(path, formatPath([key]));
    const keyProblem = qualifiedKeyProblem(key);
    if (keyProblem) {
      pushIssue(context, identity, { code: 'invalid-key', path: entryPath, message: keyProblem, value: key });
      continue;
    }
    if (typeof value !== 'string') {
      // `version: 1` is a number in YAML; Kubernetes rejects it too, so say how to fix it.
      pushIssue(context, identity, { code: 'invalid-type', path: entryPath, message: `expected string, found ${describeType(value)} (quote it)`, value });
      continue;
    }
    if (isLabels && (value.length > 63 || !LABEL_VALUE.test(value))) {
      pushIssue(context, identity, { code: 'invalid-label-value', path: entryPath, message: 'a label value must be at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit', value });
      continue;
    }
    out[key] = value;
  }
  return out;
}

function runCheck(context: DocumentContext, identity: Identity, definition: KindDefinition, spec: unknown, specPrefix: string): void {
  if (!definition.check) return;
  try {
    // ReportIssue carries no severity: the kinds name their warning codes (what Istio accepts
    // with a warning), and only those may let the resource through.
    definition.check(spec, (path, message, value, code) => {
      pushIssue(context, identity, { code: code ?? 'invalid-value', path: join(specPrefix, path), message, ...(value !== undefined ? { value } : {}) }, severityOf(code));
    });
  } catch (error) {
    // A throwing check is a bug in that kind; the file is refused rather than the server crashing.
    pushIssue(context, identity, { code: 'internal-error', path: specPrefix, message: `checking ${definition.kind} failed: ${(error as Error).message}` });
  }
}

function convertZodIssue(context: DocumentContext, identity: Identity, specPrefix: string, base: readonly PropertyKey[], issue: z.core.$ZodIssue): void {
  for (const found of schemaIssues(issue, base)) {
    const { segments, ...rest } = found;
    pushIssue(context, identity, { ...rest, path: join(specPrefix, formatPath(segments)) });
  }
}

