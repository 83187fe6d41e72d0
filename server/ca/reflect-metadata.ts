// The part of the Reflect metadata API that @peculiar/x509's dependency injection (tsyringe) needs at
// load time; package.json has no polyfill, so this one is installed unless a full one came first.

type MetadataKey = unknown;
type MetadataProperty = string | symbol | undefined;

const store = new WeakMap<object, Map<MetadataProperty, Map<MetadataKey, unknown>>>();

function ownTable(target: object, property: MetadataProperty, create: boolean): Map<MetadataKey, unknown> | undefined {
  let byProperty = store.get(target);
  if (!byProperty) {
    if (!create) return undefined;
    store.set(target, (byProperty = new Map()));
  }
  let table = byProperty.get(property);
  if (!table && create) byProperty.set(property, (table = new Map()));
  return table;
}

function getOwnMetadata(key: MetadataKey, target: object, property?: MetadataProperty): unknown {
  return ownTable(target, property, false)?.get(key);
}

// Like the proposal, lookups walk the prototype chain, so a subclass sees its base class's metadata.
function getMetadata(key: MetadataKey, target: object, property?: MetadataProperty): unknown {
  for (let current: object | null = target; current; current = Object.getPrototypeOf(current) as object | null) {
    const table = ownTable(current, property, false);
    if (table?.has(key)) return table.get(key);
  }
  return undefined;
}

function defineMetadata(key: MetadataKey, value: unknown, target: object, property?: MetadataProperty): void {
  ownTable(target, property, true)!.set(key, value);
}

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect.getMetadata !== 'function') {
  reflect.getMetadata = getMetadata;
  reflect.getOwnMetadata = getOwnMetadata;
  reflect.defineMetadata = defineMetadata;
}
