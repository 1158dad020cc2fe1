import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { SqsError } from '../src/core/errors.ts';
import { canonicalQuery, canonicalUri, verifySigV4, type SigV4Request } from '../src/frontend/sigv4.ts';

const ACCESS_KEY = 'AKIDEXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const secrets = new Map([[ACCESS_KEY, SECRET]]);
const secretFor = (id: string): string | undefined => secrets.get(id);
const NOW = Date.UTC(2024, 4, 17, 12, 30, 0);

interface Unsigned {
  method?: string;
  path?: string;
  query?: Record<string, string | string[]>;
  headers?: Record<string, string>;
  body?: string;
}

/** Signs with the SDK's own signer and returns the request as our server would see it. */
async function signed(
  req: Unsigned = {},
  opts: { at?: number; accessKeyId?: string; secret?: string; service?: string; region?: string; payloadHashHeader?: boolean } = {},
): Promise<SigV4Request> {
  const body = req.body ?? '{"QueueName":"q1"}';
  const headers: Record<string, string> = {
    host: 'localhost:9324',
    'content-type': 'application/x-amz-json-1.0',
    'x-amz-target': 'AmazonSQS.CreateQueue',
    ...req.headers,
  };
  const signer = new SignatureV4({
    credentials: { accessKeyId: opts.accessKeyId ?? ACCESS_KEY, secretAccessKey: opts.secret ?? SECRET },
    region: opts.region ?? 'us-east-1',
    service: opts.service ?? 'sqs',
    sha256: Sha256,
    applyChecksum: opts.payloadHashHeader ?? false,
  });
  const out = await signer.sign(
    { method: req.method ?? 'POST', protocol: 'http:', hostname: 'localhost', port: 9324, path: req.path ?? '/', query: req.query ?? {}, headers, body },
    { signingDate: new Date(opts.at ?? NOW) },
  );
  const lower: Record<string, string> = {};
  for (const [name, value] of Object.entries(out.headers)) lower[name.toLowerCase()] = String(value);
  return { method: out.method, path: out.path, query: wireQuery(out.query as Record<string, string | string[]>), headers: lower, body: Buffer.from(body) };
}

function wireQuery(query: Record<string, string | string[]>): string {
  const enc = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return Object.entries(query)
    .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${enc(k)}=${enc(x)}`))
    .join('&');
}

function rejects(req: SigV4Request, code: string, now = NOW): void {
  assert.throws(() => verifySigV4(req, secretFor, now), (e: unknown) => {
    assert.ok(e instanceof SqsError, `expected SqsError, got ${String(e)}`);
    assert.equal(e.code, code);
    // SQS: a malformed or expired signature is a 400, a wrong one a 403.
    assert.equal(e.status, code === 'IncompleteSignature' || code === 'RequestExpired' ? 400 : 403);
    return true;
  });
}

describe('verifySigV4', () => {
  it('accepts a request signed by the SDK signer and names the access key', async () => {
    assert.deepEqual(verifySigV4(await signed(), secretFor, NOW), { principal: ACCESS_KEY });
  });

  it('accepts a signed x-amz-content-sha256 header that matches the body', async () => {
    const req = await signed({}, { payloadHashHeader: true });
    assert.ok(req.headers['x-amz-content-sha256']);
    assert.deepEqual(verifySigV4(req, secretFor, NOW), { principal: ACCESS_KEY });
  });

  it('accepts paths, query strings and header values that need canonicalization', async () => {
    const req = await signed({
      path: '/000000000000/my-queue',
      query: { b: 'two words', a: ['z', 'y'], 'x~y': 'ä/ö*' },
      headers: { 'x-amz-meta-note': '  padded   with   spaces  ' },
    });
    assert.deepEqual(verifySigV4(req, secretFor, NOW), { principal: ACCESS_KEY });
  });

  it('accepts any region in the credential scope', async () => {
    assert.deepEqual(verifySigV4(await signed({}, { region: 'eu-central-1' }), secretFor, NOW), { principal: ACCESS_KEY });
  });

  it('accepts a signing time up to 15 minutes off the server clock', async () => {
    verifySigV4(await signed({}, { at: NOW - 14 * 60_000 }), secretFor, NOW);
    verifySigV4(await signed({}, { at: NOW + 14 * 60_000 }), secretFor, NOW);
  });

  it('rejects a tampered body', async () => {
    const req = await signed();
    rejects({ ...req, body: Buffer.from('{"QueueName":"q2"}') }, 'SignatureDoesNotMatch');
    const withHash = await signed({}, { payloadHashHeader: true });
    rejects({ ...withHash, body: Buffer.from('{"QueueName":"q2"}') }, 'SignatureDoesNotMatch');
  });

  it('rejects a tampered signed header', async () => {
    const req = await signed();
    rejects({ ...req, headers: { ...req.headers, 'x-amz-target': 'AmazonSQS.DeleteQueue' } }, 'SignatureDoesNotMatch');
  });

  it('rejects a tampered date', async () => {
    const req = await signed();
    rejects({ ...req, headers: { ...req.headers, 'x-amz-date': '20240517T123001Z' } }, 'SignatureDoesNotMatch');
  });

  it('rejects a tampered path or query', async () => {
    const req = await signed({ path: '/000000000000/a', query: { x: '1' } });
    rejects({ ...req, path: '/000000000000/b' }, 'SignatureDoesNotMatch');
    rejects({ ...req, query: 'x=2' }, 'SignatureDoesNotMatch');
  });

  it('rejects a signature made with the wrong secret', async () => {
    rejects(await signed({}, { secret: 'not-the-secret' }), 'SignatureDoesNotMatch');
  });

  it('rejects a credential scoped to another service', async () => {
    rejects(await signed({}, { service: 'sns' }), 'SignatureDoesNotMatch');
  });

  it('rejects an unknown access key', async () => {
    rejects(await signed({}, { accessKeyId: 'AKIDUNKNOWN' }), 'InvalidClientTokenId');
  });

  it('rejects a request without an Authorization header', async () => {
    const req = await signed();
    const { authorization: _, ...headers } = req.headers as Record<string, string>;
    rejects({ ...req, headers }, 'MissingAuthenticationToken');
  });

  it('rejects malformed Authorization headers', async () => {
    const req = await signed();
    const auth = req.headers.authorization as string;
    const withAuth = (value: string): SigV4Request => ({ ...req, headers: { ...req.headers, authorization: value } });
    rejects(withAuth('AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE'), 'IncompleteSignature');
    rejects(withAuth(auth.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA1')), 'IncompleteSignature');
    rejects(withAuth(auth.replace(/Signature=[0-9a-f]+/, 'Signature=xyz')), 'IncompleteSignature');
    rejects(withAuth(auth.replace('/aws4_request', '/aws5_request')), 'IncompleteSignature');
    rejects(withAuth(auth.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=content-type;x-amz-date')), 'IncompleteSignature');
    rejects(withAuth('Basic dXNlcjpwYXNz'), 'IncompleteSignature');
    const { 'x-amz-date': _, ...noDate } = req.headers as Record<string, string>;
    rejects({ ...req, headers: noDate }, 'IncompleteSignature');
    rejects({ ...req, headers: { ...req.headers, 'x-amz-date': '2024-05-17T12:30:00Z' } }, 'IncompleteSignature');
  });

  it('rejects a signing time more than 15 minutes off the server clock', async () => {
    rejects(await signed({}, { at: NOW - 16 * 60_000 }), 'RequestExpired');
    rejects(await signed({}, { at: NOW + 16 * 60_000 }), 'RequestExpired');
  });
});

describe('SigV4 canonical forms', () => {
  it('normalizes and double-encodes the path as non-S3 services do', () => {
    assert.equal(canonicalUri(''), '/');
    assert.equal(canonicalUri('/'), '/');
    assert.equal(canonicalUri('/a/./b/../c/'), '/a/c/');
    assert.equal(canonicalUri('//a//b'), '/a/b');
    assert.equal(canonicalUri('/a%20b'), '/a%2520b');
  });

  it('sorts the query by name then value and re-encodes it', () => {
    assert.equal(canonicalQuery('b=2&a=y&a=x&c'), 'a=x&a=y&b=2&c=');
    assert.equal(canonicalQuery('k=a+b&s=%7e'), 'k=a%2Bb&s=~');
    assert.equal(canonicalQuery('X-Amz-Signature=abc&a=1'), 'a=1');
  });
});
