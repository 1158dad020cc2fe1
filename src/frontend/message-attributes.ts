import { SqsError } from '../core/errors.ts';
import { isBinaryType, type MessageAttribute } from './md5.ts';
import { firstDisallowedChar, invalidContents } from './message-content.ts';
import { invalidParameter } from './wire-errors.ts';

/** Message (user) attributes: validation on send, the stored form, and selection on receive. */

export const MAX_MESSAGE_ATTRIBUTES = 10;
const MAX_NAME_OR_TYPE = 256;

export interface ParsedAttributes {
  attributes: Record<string, MessageAttribute>;
  /** Bytes counted against the message size limit: names, types and values. */
  bytes: number;
}

/** A map keyed by client-chosen names: no prototype, so a name such as '__proto__' is just a name. */
function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

const invalidAttr = (name: string, reason: string): SqsError =>
  invalidParameter(`Message (user) attribute '${name.slice(0, MAX_NAME_OR_TYPE)}' is invalid: ${reason}`);

/**
 * Where a message's AWSTraceHeader is kept: inside its encrypted attributes, under a name no user
 * attribute can have (user names must not start with 'AWS.'). Never shown as a user attribute.
 */
export const TRACE_HEADER_KEY = 'AWS.TraceHeader';

/** SendMessage's MessageSystemAttributes: only AWSTraceHeader exists, a non-empty String. */
export function parseTraceHeader(input: unknown): string | undefined {
  if (input === undefined || input === null) return undefined;
  if (typeof input !== 'object' || Array.isArray(input)) throw invalidParameter('MessageSystemAttributes must be a map of names to attribute values.');
  let trace: string | undefined;
  for (const [name, raw] of Object.entries(input as Record<string, unknown>)) {
    if (name !== 'AWSTraceHeader') throw invalidParameter(`Message system attribute name '${name.slice(0, 256)}' is invalid.`);
    const v = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    if (v.DataType !== 'String') throw invalidParameter("Message system attribute 'AWSTraceHeader' must have DataType String.");
    if (typeof v.StringValue !== 'string' || v.StringValue === '' || v.StringValue.length > 2048) {
      throw invalidParameter("Message system attribute 'AWSTraceHeader' must have a StringValue of 1 to 2048 characters.");
    }
    const bad = firstDisallowedChar(v.StringValue);
    if (bad !== undefined) throw invalidContents("the value of message system attribute 'AWSTraceHeader'", bad);
    trace = v.StringValue;
  }
  return trace;
}

/** Validates SendMessage's MessageAttributes (wire form: BinaryValue is base64). */
export function parseMessageAttributes(input: unknown): ParsedAttributes {
  if (input === undefined || input === null) return { attributes: {}, bytes: 0 };
  if (typeof input !== 'object' || Array.isArray(input)) throw invalidParameter('MessageAttributes must be a map of names to attribute values.');
  const entries = Object.entries(input as Record<string, unknown>);
  if (entries.length > MAX_MESSAGE_ATTRIBUTES) {
    throw invalidParameter(`Number of message attributes [${entries.length}] exceeds the allowed maximum [${MAX_MESSAGE_ATTRIBUTES}].`);
  }
  const attributes = dict<MessageAttribute>();
  let bytes = 0;
  for (const [name, raw] of entries) {
    checkName(name);
    const attr = parseValue(name, raw);
    attributes[name] = attr;
    bytes += Buffer.byteLength(name) + Buffer.byteLength(attr.DataType) +
      (attr.BinaryValue ? attr.BinaryValue.length : Buffer.byteLength(attr.StringValue ?? ''));
  }
  return { attributes, bytes };
}

function checkName(name: string): void {
  if (name.length === 0 || name.length > MAX_NAME_OR_TYPE) throw invalidAttr(name, 'names must be 1 to 256 characters long.');
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw invalidAttr(name, 'names can contain only A-Z, a-z, 0-9, underscore, hyphen and period.');
  if (/^(aws\.|amazon\.)/i.test(name)) throw invalidAttr(name, "names must not start with 'AWS.' or 'Amazon.'.");
  if (name.startsWith('.') || name.endsWith('.') || name.includes('..')) {
    throw invalidAttr(name, 'names must not start or end with a period, nor contain two periods in a row.');
  }
}

function parseValue(name: string, raw: unknown): MessageAttribute {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalidAttr(name, 'the value must be an object.');
  const v = raw as Record<string, unknown>;
  if (v.DataType === undefined || v.DataType === null || v.DataType === '') throw invalidAttr(name, 'it must contain a non-empty DataType.');
  if (typeof v.DataType !== 'string') throw invalidAttr(name, 'DataType must be a string.');
  const dataType = v.DataType;
  if (dataType.length > MAX_NAME_OR_TYPE) throw invalidAttr(name, 'DataType must be at most 256 characters long.');
  const bad = firstDisallowedChar(dataType);
  if (bad !== undefined) throw invalidContents(`the data type of message attribute '${name}'`, bad);
  const base = dataType.split('.', 1)[0]!;
  const label = dataType.slice(base.length + 1);
  if ((base !== 'String' && base !== 'Number' && base !== 'Binary') || (dataType.length > base.length && label === '')) {
    throw invalidAttr(name, 'DataType must be String, Number or Binary, optionally followed by a period and a custom type label.');
  }
  if (isNonEmptyList(v.StringListValues) || isNonEmptyList(v.BinaryListValues)) {
    throw invalidParameter('Message attribute list values in SendMessage operation are not supported.');
  }
  if (isBinaryType(dataType)) {
    if (v.StringValue !== undefined && v.StringValue !== null) throw invalidAttr(name, 'a Binary attribute takes a BinaryValue, not a StringValue.');
    const bytes = decodeBase64(v.BinaryValue);
    if (bytes === undefined) throw invalidAttr(name, 'BinaryValue must be valid base64.');
    if (bytes.length === 0) throw invalidAttr(name, `it must contain a non-empty value of type '${dataType}'.`);
    return { DataType: dataType, BinaryValue: bytes };
  }
  if (v.BinaryValue !== undefined && v.BinaryValue !== null) throw invalidAttr(name, `a ${base} attribute takes a StringValue, not a BinaryValue.`);
  if (typeof v.StringValue !== 'string' || v.StringValue === '') throw invalidAttr(name, `it must contain a non-empty value of type '${dataType}'.`);
  const badValue = firstDisallowedChar(v.StringValue);
  if (badValue !== undefined) throw invalidContents(`the value of message attribute '${name}'`, badValue);
  if (base === 'Number' && !isSqsNumber(v.StringValue)) {
    throw invalidAttr(name, 'a Number must be a decimal of at most 38 significant digits between -10^128 and 10^126.');
  }
  return { DataType: dataType, StringValue: v.StringValue };
}

function isNonEmptyList(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

function decodeBase64(value: unknown): Buffer | undefined {
  if (typeof value !== 'string') return undefined;
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value)) return undefined;
  return Buffer.from(value, 'base64');
}

/** SQS numbers: up to 38 significant digits, magnitude within 10^-128 .. 10^126. */
export function isSqsNumber(text: string): boolean {
  const m = /^[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$/.exec(text);
  if (!m) return false;
  const intPart = m[1] ?? '';
  const fracPart = m[2] ?? '';
  if (intPart === '' && fracPart === '') return false;
  const digits = (intPart + fracPart).replace(/^0+/, '');
  if (digits === '') return true; // zero
  const significant = digits.replace(/0+$/, '');
  if (significant.length > 38) return false;
  // Decimal exponent of the leading significant digit: 123.4 → 2, 0.005 → -3.
  const intDigits = intPart.replace(/^0+/, '');
  const exponent = Number(m[3] ?? 0);
  const magnitude = intDigits !== ''
    ? intDigits.length - 1 + exponent
    : -(fracPart.length - fracPart.replace(/^0+/, '').length + 1) + exponent;
  return magnitude >= -128 && (magnitude < 126 || (magnitude === 126 && significant === '1'));
}

/** The stored (and wire) form: BinaryValue as base64. Encrypted as JSON by the keyring. */
export function encodeAttributes(attributes: Readonly<Record<string, MessageAttribute>>): Buffer | null {
  const names = Object.keys(attributes);
  if (names.length === 0) return null;
  const wire = dict<{ DataType: string; StringValue?: string; BinaryValue?: string }>();
  for (const name of names) {
    const a = attributes[name]!;
    wire[name] = a.BinaryValue
      ? { DataType: a.DataType, BinaryValue: Buffer.from(a.BinaryValue).toString('base64') }
      : { DataType: a.DataType, StringValue: a.StringValue ?? '' };
  }
  return Buffer.from(JSON.stringify(wire), 'utf8');
}

export function decodeAttributes(stored: Buffer | null): Record<string, MessageAttribute> {
  if (!stored) return {};
  const wire = JSON.parse(stored.toString('utf8')) as Record<string, { DataType: string; StringValue?: string; BinaryValue?: string }>;
  const out = dict<MessageAttribute>();
  for (const [name, a] of Object.entries(wire)) {
    out[name] = a.BinaryValue !== undefined
      ? { DataType: a.DataType, BinaryValue: Buffer.from(a.BinaryValue, 'base64') }
      : { DataType: a.DataType, StringValue: a.StringValue ?? '' };
  }
  return out;
}

/** Wire form of attributes for a response. */
export function attributesToWire(attributes: Readonly<Record<string, MessageAttribute>>): Record<string, Record<string, string>> {
  const out = dict<Record<string, string>>();
  for (const [name, a] of Object.entries(attributes)) {
    out[name] = a.BinaryValue
      ? { DataType: a.DataType, BinaryValue: Buffer.from(a.BinaryValue).toString('base64') }
      : { DataType: a.DataType, StringValue: a.StringValue ?? '' };
  }
  return out;
}

/**
 * ReceiveMessage's MessageAttributeNames: 'All' or '.*' select everything, 'prefix.*' the names
 * starting with 'prefix.', anything else that exact name. Returns a predicate on names.
 */
export function attributeSelector(input: unknown): (name: string) => boolean {
  if (input === undefined || input === null) return () => false;
  if (!Array.isArray(input) || !input.every((n) => typeof n === 'string' && n.length > 0 && n.length <= MAX_NAME_OR_TYPE)) {
    throw invalidParameter('MessageAttributeNames must be a list of attribute names.');
  }
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const name of input as string[]) {
    if (name === 'All' || name === '.*') return () => true;
    if (name.endsWith('.*')) prefixes.push(name.slice(0, -1));
    else exact.add(name);
  }
  return (name) => exact.has(name) || prefixes.some((p) => name.startsWith(p));
}

export function selectAttributes(attributes: Readonly<Record<string, MessageAttribute>>, wanted: (name: string) => boolean): Record<string, MessageAttribute> {
  const out = dict<MessageAttribute>();
  for (const [name, a] of Object.entries(attributes)) if (wanted(name)) out[name] = a;
  return out;
}
