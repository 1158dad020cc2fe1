import { SqsError } from '../core/errors.ts';
import { QUERY_MODEL, type Members, type Shape } from './query-model.ts';
import { queryCodeOf } from './wire-errors.ts';

/**
 * The SQS Query protocol: form parameters in (`Action=SendMessage&MessageAttribute.1.Name=…`),
 * XML out. It turns a request into the same input object a JSON client sends, and an action's
 * result object into the XML SQS writes, guided by the service model's names (query-model.ts).
 */

export const QUERY_NAMESPACE = 'http://queue.amazonaws.com/doc/2012-11-05/';
export const QUERY_VERSIONS = new Set(['2012-11-05', '2011-10-01']);
export const XML_CONTENT_TYPE = 'text/xml';

export type FormParams = ReadonlyMap<string, string>;

/** Form (or query-string) text into parameters. The first occurrence of a name wins. */
export function parseForm(text: string, into = new Map<string, string>()): Map<string, string> {
  for (const [name, value] of new URLSearchParams(text)) if (!into.has(name)) into.set(name, value);
  return into;
}

/** A map keyed by client-chosen names: no prototype, so '__proto__' is just a name. */
function dict(): Record<string, unknown> {
  return Object.create(null) as Record<string, unknown>;
}

/** The action's input in its JSON form. Parameters the model does not name are ignored, as SQS does. */
export function decodeQueryInput(action: string, params: FormParams): Record<string, unknown> {
  const model = QUERY_MODEL[action];
  if (!model) return dict();
  return decodeStruct(model.input, params, '', indexOf(params));
}

/** Per dotted prefix, the 1-based indices that follow it (`Attribute.` → {1, 2}). Built once per request. */
type IndexMap = Map<string, Set<number>>;

function indexOf(params: FormParams): IndexMap {
  const out: IndexMap = new Map();
  for (const name of params.keys()) {
    const parts = name.split('.');
    for (let k = 1; k < parts.length; k++) {
      if (!/^[1-9]\d{0,3}$/.test(parts[k]!)) continue;
      const prefix = `${parts.slice(0, k).join('.')}.`;
      let set = out.get(prefix);
      if (!set) out.set(prefix, (set = new Set()));
      set.add(Number(parts[k]));
    }
  }
  return out;
}

function decodeStruct(members: Members, params: FormParams, prefix: string, index: IndexMap): Record<string, unknown> {
  const out = dict();
  for (const [jsonName, [wire, shape]] of Object.entries(members)) {
    const value = decodeValue(shape, params, `${prefix}${wire}`, index);
    if (value !== undefined) out[jsonName] = value;
  }
  return out;
}

function decodeValue(shape: Shape, params: FormParams, name: string, index: IndexMap): unknown {
  if (shape === 'string') return params.get(name);
  if (shape === 'int') {
    const raw = params.get(name);
    // Not an integer: passed on as text, so the action refuses it with its own message.
    return raw !== undefined && /^-?\d{1,15}$/.test(raw) ? Number(raw) : raw;
  }
  if (shape === 'bool') {
    const raw = params.get(name);
    return raw === 'true' ? true : raw === 'false' ? false : raw;
  }
  if ('struct' in shape) {
    const value = decodeStruct(shape.struct, params, `${name}.`, index);
    return Object.keys(value).length > 0 || params.has(name) ? value : undefined;
  }
  if ('list' in shape) {
    // Flattened lists repeat the member name (`AttributeName.1`); the model's two nested lists
    // (attribute list values) add it once more: both forms are read.
    const indices = sorted(index.get(`${name}.`)) ?? sorted(index.get(`${name}.${shape.list}.`));
    const base = index.has(`${name}.`) ? `${name}.` : `${name}.${shape.list}.`;
    if (!indices) return undefined;
    return indices.map((n) => decodeValue(shape.of, params, `${base}${n}`, index));
  }
  const indices = sorted(index.get(`${name}.`));
  if (!indices) return undefined;
  const out = dict();
  for (const n of indices) {
    const key = params.get(`${name}.${n}.${shape.key}`);
    if (key === undefined) throw new SqsError('MissingParameter', `The request must contain the parameter ${name}.${n}.${shape.key}.`);
    out[key] = decodeValue(shape.of, params, `${name}.${n}.${shape.value}`, index);
  }
  return out;
}

function sorted(set: Set<number> | undefined): number[] | undefined {
  return set && set.size > 0 ? [...set].sort((a, b) => a - b) : undefined;
}

// ---- XML out ----

export function escapeXml(text: string): string {
  return text.replace(/[&<>"'\r]/g, (c) => {
    switch (c) {
      case '&': return '&amp;';
      case '<': return '&lt;';
      case '>': return '&gt;';
      case '"': return '&quot;';
      case "'": return '&apos;';
      default: return '&#13;'; // a bare CR would be turned into LF by any XML parser
    }
  });
}

/** `<ActionResponse><ActionResult>…</ActionResult><ResponseMetadata>…` for one action's result. */
export function encodeQueryResult(action: string, result: Readonly<Record<string, unknown>>, requestId: string): string {
  const model = QUERY_MODEL[action];
  let body = '';
  if (model?.output) body = `<${action}Result>${encodeStruct(model.output, result)}</${action}Result>`;
  return `<?xml version="1.0"?><${action}Response xmlns="${QUERY_NAMESPACE}">${body}` +
    `<ResponseMetadata><RequestId>${escapeXml(requestId)}</RequestId></ResponseMetadata></${action}Response>`;
}

function encodeStruct(members: Members, value: Readonly<Record<string, unknown>>): string {
  let out = '';
  for (const [jsonName, [wire, shape]] of Object.entries(members)) {
    const member = value[jsonName];
    if (member !== undefined && member !== null) out += encodeValue(shape, wire, member);
  }
  return out;
}

function encodeValue(shape: Shape, wire: string, value: unknown): string {
  if (shape === 'string' || shape === 'int' || shape === 'bool') return `<${wire}>${escapeXml(String(value))}</${wire}>`;
  if ('struct' in shape) return `<${wire}>${encodeStruct(shape.struct, value as Record<string, unknown>)}</${wire}>`;
  if ('list' in shape) return (value as unknown[]).map((v) => encodeValue(shape.of, shape.list, v)).join('');
  let out = '';
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    out += `<${wire}><${shape.key}>${escapeXml(key)}</${shape.key}>${encodeValue(shape.of, shape.value, v)}</${wire}>`;
  }
  return out;
}

/** SQS's XML error body: the legacy query code, Sender or Receiver, and the request id. */
export function encodeQueryError(error: SqsError, requestId: string): string {
  return `<?xml version="1.0"?><ErrorResponse xmlns="${QUERY_NAMESPACE}"><Error>` +
    `<Type>${error.senderFault ? 'Sender' : 'Receiver'}</Type><Code>${escapeXml(queryCodeOf(error.code))}</Code>` +
    `<Message>${escapeXml(error.message)}</Message><Detail/></Error><RequestId>${escapeXml(requestId)}</RequestId></ErrorResponse>`;
}
