import { createHmac, timingSafeEqual } from 'node:crypto';
import { hexDigest } from '../crypto/digest.ts';
import { SqsError } from '../core/errors.ts';

/**
 * Verification of AWS Signature Version 4 (header form) for the SQS endpoint and the KMS API.
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 */

export interface SigV4Request {
  method: string;
  /** The path exactly as it came on the wire (still percent-encoded), without the query. */
  path: string;
  /** The raw query string without the leading '?', or ''. */
  query: string;
  /** Node-style headers: lower-case names. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const SERVICE = 'sqs';
const MAX_SKEW_MS = 15 * 60 * 1000;
const SIGNING_KEY_CACHE_MAX = 256;

const denied = (code: string, message: string): SqsError => new SqsError(code, message, 403);
// SQS answers a malformed or expired signature with 400, a wrong one with 403.
const incomplete = (message: string): SqsError => new SqsError('IncompleteSignature', message, 400);
const mismatch = (message = 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.'): SqsError =>
  denied('SignatureDoesNotMatch', message);

export interface SigV4Checks {
  /** The service the signature must be scoped to. Default 'sqs'. */
  service?: string;
  /** The service's region: a request signed for another is refused. Default: any region. */
  region?: string;
  /** Headers (lower case) that must be signed when present, so they cannot be changed in transit. */
  mustSign?: readonly string[];
}

export function verifySigV4(
  req: SigV4Request,
  secretFor: (accessKeyId: string) => string | undefined,
  nowMs: number,
  checks: SigV4Checks = {},
): { principal: string } {
  const authorization = singleHeader(req.headers, 'authorization');
  if (authorization === undefined || authorization.trim() === '') {
    throw denied('MissingAuthenticationToken', 'Request is missing Authentication Token');
  }
  const auth = parseAuthorization(authorization);

  const amzDate = singleHeader(req.headers, 'x-amz-date');
  if (amzDate === undefined) throw incomplete("Authorization header requires existence of a 'X-Amz-Date' header.");
  const dateMs = parseAmzDate(amzDate);
  if (!auth.signedHeaders.includes('host')) throw incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.");
  if (!auth.signedHeaders.includes('x-amz-date')) throw incomplete("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.");
  for (const name of checks.mustSign ?? []) {
    if (req.headers[name] !== undefined && !auth.signedHeaders.includes(name)) {
      throw incomplete(`'${name}' must be a 'SignedHeader' in the AWS Authorization.`);
    }
  }

  const secret = secretFor(auth.accessKeyId);
  if (secret === undefined) throw denied('InvalidClientTokenId', 'The security token included in the request is invalid.');

  if (Math.abs(dateMs - nowMs) > MAX_SKEW_MS) {
    throw new SqsError('RequestExpired', `Request has expired: the signature date ${amzDate} is more than 15 minutes from the server time.`, 400);
  }
  if (auth.date !== amzDate.slice(0, 8)) throw mismatch(`Credential should be scoped to a valid date: ${amzDate.slice(0, 8)}.`);
  const service = checks.service ?? SERVICE;
  if (auth.service !== service) throw mismatch(`Credential should be scoped to correct service: '${service}'.`);
  if (checks.region !== undefined && auth.region !== checks.region) {
    throw mismatch(`Credential should be scoped to a valid region, not '${auth.region}'.`);
  }

  // The payload hash is always computed from the body itself. A client-sent x-amz-content-sha256
  // must agree with it; UNSIGNED-PAYLOAD is refused because SQS bodies are always signed.
  const payloadHash = sha256Hex(req.body);
  const declaredHash = singleHeader(req.headers, 'x-amz-content-sha256');
  if (declaredHash !== undefined && declaredHash !== payloadHash) {
    throw mismatch('The provided x-amz-content-sha256 header does not match what was computed.');
  }

  const canonicalRequest = [
    req.method.toUpperCase(),
    canonicalUri(req.path),
    canonicalQuery(req.query),
    canonicalHeaders(req.headers, auth.signedHeaders),
    auth.signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const expected = createHmac('sha256', signingKey(auth.accessKeyId, secret, auth.date, auth.region, auth.service)).update(stringToSign).digest();

  // Both sides are 32 bytes (the format check guarantees 64 hex digits), so the compare is constant-time.
  if (!timingSafeEqual(expected, Buffer.from(auth.signature, 'hex'))) throw mismatch();
  return { principal: auth.accessKeyId };
}

interface ParsedAuthorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: readonly string[];
  signature: string;
}

function parseAuthorization(value: string): ParsedAuthorization {
  const trimmed = value.trim();
  const space = trimmed.indexOf(' ');
  const algorithm = space < 0 ? trimmed : trimmed.slice(0, space);
  if (algorithm !== ALGORITHM) throw incomplete(`Unsupported AWS 'algorithm': '${algorithm.slice(0, 40)}'.`);
  const fields = new Map<string, string>();
  for (const part of trimmed.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw incomplete('Authorization header is malformed: expected Credential, SignedHeaders and Signature.');
    const name = part.slice(0, eq).trim();
    if (fields.has(name)) throw incomplete(`Authorization header repeats '${name.slice(0, 40)}'.`);
    fields.set(name, part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined || signedHeaders === undefined || signature === undefined || fields.size !== 3) {
    throw incomplete('Authorization header requires Credential, SignedHeaders and Signature, and nothing else.');
  }
  const scope = credentialScope(credential);
  const headers = signedHeaderList(signedHeaders);
  if (!/^[0-9a-f]{64}$/.test(signature)) throw incomplete('Signature must be 64 lower-case hex digits.');
  return { ...scope, signedHeaders: headers, signature };
}

/**
 * A client sends the same credential scope and signed-header list on request after request: each
 * distinct string is checked once and its parse kept (a few hundred at most; the oldest go first).
 */
const PARSE_CACHE_MAX = 256;
const scopes = new Map<string, Readonly<{ accessKeyId: string; date: string; region: string; service: string }>>();
const headerLists = new Map<string, readonly string[]>();

function remembered<T>(cache: Map<string, T>, text: string, parse: (text: string) => T): T {
  const known = cache.get(text);
  if (known !== undefined) return known;
  const parsed = parse(text);
  if (cache.size >= PARSE_CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(text, parsed);
  return parsed;
}

function credentialScope(credential: string): Readonly<{ accessKeyId: string; date: string; region: string; service: string }> {
  return remembered(scopes, credential, () => {
    const scope = credential.split('/');
    if (scope.length !== 5 || scope[4] !== 'aws4_request') {
      throw incomplete("Credential must have the form <access key id>/<date>/<region>/<service>/aws4_request.");
    }
    const [accessKeyId, date, region, service] = scope as [string, string, string, string];
    if (!/^[A-Za-z0-9]{1,128}$/.test(accessKeyId)) throw incomplete('Credential has a malformed access key id.');
    if (!/^\d{8}$/.test(date)) throw incomplete('Credential has a malformed date.');
    if (!/^[a-z0-9-]{1,64}$/.test(region)) throw incomplete('Credential has a malformed region.');
    if (!/^[a-z0-9-]{1,64}$/.test(service)) throw incomplete('Credential has a malformed service.');
    return Object.freeze({ accessKeyId, date, region, service });
  });
}

function signedHeaderList(signedHeaders: string): readonly string[] {
  return remembered(headerLists, signedHeaders, () => {
    if (!/^[a-z0-9-]+(;[a-z0-9-]+)*$/.test(signedHeaders)) throw incomplete('SignedHeaders must be lower-case header names separated by semicolons.');
    return Object.freeze(signedHeaders.split(';'));
  });
}

/** Requests signed within the same second share their date: the last one parsed is kept. */
let lastAmzDate = { text: '', ms: 0 };

/** ISO 8601 basic format, UTC: 20240102T030405Z. */
function parseAmzDate(value: string): number {
  if (value === lastAmzDate.text) return lastAmzDate.ms;
  const ms = parseAmzDateText(value);
  lastAmzDate = { text: value, ms };
  return ms;
}

function parseAmzDateText(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) throw incomplete("X-Amz-Date must be in the ISO 8601 basic format 'yyyyMMddTHHmmssZ'.");
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(ms);
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) {
    throw incomplete('X-Amz-Date is not a valid date.');
  }
  return ms;
}

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ is %XX (upper case). */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Services other than S3 normalize the path (drop empty and '.' segments, resolve '..') and
 * encode the wire path once more, so a '%' already on the wire becomes '%25'.
 */
export function canonicalUri(path: string): string {
  if (path === '/') return path; // what SDKs post to
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const normalized = `/${segments.join('/')}${segments.length > 0 && path.endsWith('/') ? '/' : ''}`;
  return uriEncode(normalized).replace(/%2F/g, '/');
}

/** Parameters decoded, re-encoded the SigV4 way, sorted by name then value. */
export function canonicalQuery(query: string): string {
  const pairs: [string, string][] = [];
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(rawName);
      value = decodeURIComponent(rawValue);
    } catch {
      throw mismatch('The query string is not correctly percent-encoded.');
    }
    if (name.toLowerCase() === 'x-amz-signature') continue;
    pairs.push([uriEncode(name), uriEncode(value)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

/** `name:value\n` for each signed header, values with runs of blanks collapsed and ends trimmed. */
const NEEDS_NORMALIZING = /[\r\n\t]| {2}|^ | $/;

function canonicalHeaders(headers: SigV4Request['headers'], signed: readonly string[]): string {
  let out = '';
  for (const name of signed) {
    const raw = headers[name];
    if (raw === undefined) throw mismatch(`The signed header '${name}' is not in the request.`);
    const value = Array.isArray(raw) ? raw.join(',') : raw;
    // Most values need no normalizing; only those that do pay for the three replacements.
    const canonical = NEEDS_NORMALIZING.test(value) ? value.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '') : value;
    out += `${name}:${canonical}\n`;
  }
  return out;
}

function singleHeader(headers: SigV4Request['headers'], name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) {
    if (value.length !== 1) throw incomplete(`Header '${name}' must appear once.`);
    return value[0];
  }
  return value;
}

function sha256Hex(data: Buffer | string): string {
  return hexDigest('sha256', data);
}

/**
 * kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
 * Cached per (access key, date, region) beside the secret it was derived from: four HMACs per
 * request saved. Oldest entries go first once the cache is full.
 */
const signingKeys = new Map<string, { secret: string; key: Buffer }>();

function signingKey(accessKeyId: string, secret: string, date: string, region: string, service: string): Buffer {
  const cacheKey = `${accessKeyId}/${date}/${region}/${service}`;
  const cached = signingKeys.get(cacheKey);
  if (cached && cached.secret === secret) return cached.key;
  const kDate = createHmac('sha256', `AWS4${secret}`).update(date).digest();
  const kRegion = createHmac('sha256', kDate).update(region).digest();
  const kService = createHmac('sha256', kRegion).update(service).digest();
  const key = createHmac('sha256', kService).update('aws4_request').digest();
  if (signingKeys.size >= SIGNING_KEY_CACHE_MAX) signingKeys.delete(signingKeys.keys().next().value!);
  signingKeys.set(cacheKey, { secret, key });
  return key;
}
