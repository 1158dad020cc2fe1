import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Clock } from '../core/clock.ts';
import { KmsError, SqsError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { zeroize } from '../crypto/zero.ts';
import { verifySigV4 } from '../frontend/sigv4.ts';
import type { EncryptionContext, Kms, KmsAdmin, KeyMetadata } from './types.ts';

/**
 * The subset of the AWS KMS API (JSON 1.1, `TrentService.*`, SigV4 with service `kms`) that PKP's
 * metadata service and an operator need, served from a KMS of this process. With it the metadata
 * service talks to this KMS through @aws-sdk/client-kms exactly as it would to AWS KMS.
 */
export interface KmsApiServerOptions {
  /** Key administration and, unless `crypto` is given, the cryptographic calls too. */
  kms: KmsAdmin;
  /** The KMS for GenerateDataKey and Decrypt, e.g. the same KMS behind a request quota. */
  crypto?: Kms;
  /** accessKeyId → secretAccessKey */
  credentials: Map<string, string>;
  clock: Clock;
  logger: Logger;
  /** The account id in key and alias ARNs. */
  accountId: string;
  region: string;
}

const CONTENT_TYPE = 'application/x-amz-json-1.1';
const TARGET_PREFIX = 'TrentService.';
const BODY_LIMIT = 64 * 1024;
/** PKP's DEKs are AES-256 keys; other sizes are refused, not silently changed. */
const DATA_KEY_BYTES = 32;

type Body = Record<string, unknown>;
type Operation = (input: Body) => Promise<Body>;

export function createKmsApiServer(options: KmsApiServerOptions): FastifyInstance {
  const { kms, credentials, clock, logger } = options;
  const keyOps = options.crypto ?? kms;
  const arnOf = (resource: string): string => `arn:aws:kms:${options.region}:${options.accountId}:${resource}`;
  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  const keyMetadata = (k: KeyMetadata): Body => ({
    AWSAccountId: options.accountId,
    KeyId: k.keyId,
    Arn: k.arn,
    CreationDate: k.createdAt / 1000,
    Enabled: k.enabled,
    Description: k.description,
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: k.enabled ? 'Enabled' : 'Disabled',
    Origin: 'AWS_KMS',
    KeyManager: k.aliases.some((a) => a.startsWith('alias/aws/')) ? 'AWS' : 'CUSTOMER',
    KeySpec: 'SYMMETRIC_DEFAULT',
    CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
    EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
    MultiRegion: false,
  });

  const operations: Record<string, Operation> = {
    CreateKey: async (input) => {
      optionalString(input, 'Description');
      const usage = optionalString(input, 'KeyUsage');
      if (usage !== undefined && usage !== 'ENCRYPT_DECRYPT') throw validation('only KeyUsage ENCRYPT_DECRYPT is supported');
      const spec = optionalString(input, 'KeySpec') ?? optionalString(input, 'CustomerMasterKeySpec');
      if (spec !== undefined && spec !== 'SYMMETRIC_DEFAULT') throw validation('only KeySpec SYMMETRIC_DEFAULT is supported');
      return { KeyMetadata: keyMetadata(await kms.createKey(optionalString(input, 'Description') ?? '')) };
    },
    DescribeKey: async (input) => ({ KeyMetadata: keyMetadata(await kms.describeKey(requiredString(input, 'KeyId'))) }),
    ListKeys: async (input) => {
      const page = paginate(await kms.listKeys(), input);
      return { Keys: page.items.map((k) => ({ KeyId: k.keyId, KeyArn: k.arn })), ...page.more };
    },
    CreateAlias: async (input) => {
      await kms.createAlias(requiredString(input, 'AliasName'), requiredString(input, 'TargetKeyId'));
      return {};
    },
    ListAliases: async (input) => {
      const only = optionalString(input, 'KeyId');
      const onlyKey = only === undefined ? undefined : (await kms.describeKey(only)).keyId;
      const aliases = (await kms.listKeys())
        .filter((k) => onlyKey === undefined || k.keyId === onlyKey)
        .flatMap((k) => k.aliases.map((alias) => ({ AliasName: alias, AliasArn: arnOf(alias), TargetKeyId: k.keyId })))
        .sort((a, b) => (a.AliasName < b.AliasName ? -1 : 1));
      const page = paginate(aliases, input);
      return { Aliases: page.items, ...page.more };
    },
    EnableKey: async (input) => {
      await kms.enableKey(requiredString(input, 'KeyId'));
      return {};
    },
    DisableKey: async (input) => {
      await kms.disableKey(requiredString(input, 'KeyId'));
      return {};
    },
    GenerateDataKey: async (input) => {
      const keyId = requiredString(input, 'KeyId');
      const context = encryptionContext(input);
      const bytes = input.NumberOfBytes;
      const spec = optionalString(input, 'KeySpec');
      if (bytes !== undefined && spec !== undefined) throw validation('specify either KeySpec or NumberOfBytes, not both');
      if (bytes === undefined && spec === undefined) throw validation('KeySpec or NumberOfBytes is required');
      if (spec !== undefined && spec !== 'AES_256') throw validation('only KeySpec AES_256 is supported');
      if (bytes !== undefined && bytes !== DATA_KEY_BYTES) throw validation(`only NumberOfBytes ${DATA_KEY_BYTES} is supported`);
      const generated = await keyOps.generateDataKey(keyId, context, 'demand');
      try {
        return { KeyId: arnOf(`key/${generated.keyId}`), CiphertextBlob: generated.ciphertextBlob.toString('base64'), Plaintext: generated.plaintext.toString('base64') };
      } finally {
        zeroize(generated.plaintext);
      }
    },
    Decrypt: async (input) => {
      const blob = Buffer.from(requiredString(input, 'CiphertextBlob'), 'base64');
      if (blob.length === 0) throw validation('CiphertextBlob must be base64 of at least one byte');
      const algorithm = optionalString(input, 'EncryptionAlgorithm');
      if (algorithm !== undefined && algorithm !== 'SYMMETRIC_DEFAULT') throw validation('only EncryptionAlgorithm SYMMETRIC_DEFAULT is supported');
      const named = optionalString(input, 'KeyId');
      const decrypted = await keyOps.decrypt(blob, encryptionContext(input), 'demand');
      try {
        // A caller that names the key must name the one the blob was made under (as AWS KMS checks).
        if (named !== undefined && (await kms.describeKey(named)).keyId !== decrypted.keyId) {
          throw new KmsError('IncorrectKeyException', 'the ciphertext was not encrypted under the KMS key named in KeyId');
        }
        return { KeyId: arnOf(`key/${decrypted.keyId}`), Plaintext: decrypted.plaintext.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      } finally {
        zeroize(decrypted.plaintext);
      }
    },
  };

  const handle = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    try {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const url = request.raw.url ?? '/';
      const q = url.indexOf('?');
      verifySigV4(
        { method: request.method, path: q < 0 ? url : url.slice(0, q), query: q < 0 ? '' : url.slice(q + 1), headers: request.headers, body },
        (accessKeyId) => credentials.get(accessKeyId),
        clock.now(),
        // The target and the content type are what the request does: a captured request must not be replayable as another one.
        { service: 'kms', region: options.region, mustSign: ['x-amz-target', 'content-type'] },
      );
      const target = request.headers['x-amz-target'];
      const name = typeof target === 'string' && target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : undefined;
      const operation = name !== undefined && Object.hasOwn(operations, name) ? operations[name]! : undefined;
      if (operation === undefined) throw new WireError('UnknownOperationException', `unsupported operation ${String(target).slice(0, 80)}`);
      const contentType = request.headers['content-type'];
      if (typeof contentType !== 'string' || contentType.split(';', 1)[0]!.trim().toLowerCase() !== CONTENT_TYPE) {
        throw new WireError('SerializationException', `Content-Type must be ${CONTENT_TYPE}`);
      }
      const result = await operation(parseBody(body));
      return reply.code(200).header('content-type', CONTENT_TYPE).header('x-amzn-requestid', randomUUID()).send(JSON.stringify(result));
    } catch (error) {
      return sendError(reply, toWireError(error, logger));
    }
  };
  app.post('/', handle);
  app.setNotFoundHandler((_request, reply) => sendError(reply, new WireError('UnknownOperationException', 'KMS operations are POST requests to /')));
  app.setErrorHandler((error: FastifyError, _request, reply) =>
    sendError(reply, error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? new WireError('ValidationException', 'the request is too large') : toWireError(error, logger)));
  return app;
}

/** An error as it goes on the wire: the KMS error shape's name and the HTTP status. */
class WireError extends Error {
  constructor(readonly type: string, message: string, readonly status = 400) {
    super(message);
  }
}

/** SigV4 failures come as SQS-named errors; AWS KMS names the same failures thus. */
const AUTH_ERRORS: Readonly<Record<string, string>> = {
  MissingAuthenticationToken: 'MissingAuthenticationTokenException',
  InvalidClientTokenId: 'UnrecognizedClientException',
  SignatureDoesNotMatch: 'InvalidSignatureException',
  IncompleteSignature: 'IncompleteSignatureException',
  RequestExpired: 'InvalidSignatureException',
};

function toWireError(error: unknown, logger: Logger): WireError {
  if (error instanceof WireError) return error;
  if (error instanceof KmsError) return new WireError(error.code, error.message, error.code === 'KMSInternalException' ? 500 : 400);
  if (error instanceof SqsError && AUTH_ERRORS[error.code] !== undefined) return new WireError(AUTH_ERRORS[error.code]!, error.message);
  const e = error as { name?: unknown; code?: unknown } | null;
  logger.error({ error: { name: e?.name, code: e?.code } }, 'KMS API request failed');
  return new WireError('KMSInternalException', 'the request failed because of an internal error', 500);
}

function sendError(reply: FastifyReply, error: WireError): FastifyReply {
  return reply
    .code(error.status)
    .header('content-type', CONTENT_TYPE)
    .header('x-amzn-errortype', error.type)
    .header('x-amzn-requestid', randomUUID())
    .send(JSON.stringify({ __type: error.type, message: error.message }));
}

const validation = (message: string): WireError => new WireError('ValidationException', message);

function parseBody(body: Buffer): Body {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new WireError('SerializationException', 'the request body is not valid UTF-8 JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WireError('SerializationException', 'the request body must be a JSON object');
  return value as Body;
}

function optionalString(input: Body, name: string): string | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw validation(`${name} must be a string`);
  return value;
}

function requiredString(input: Body, name: string): string {
  const value = optionalString(input, name);
  if (value === undefined || value === '') throw validation(`${name} is required`);
  return value;
}

function encryptionContext(input: Body): EncryptionContext {
  const value = input.EncryptionContext;
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw validation('EncryptionContext must be a map of strings');
  for (const v of Object.values(value)) if (typeof v !== 'string') throw validation('EncryptionContext values must be strings');
  return value as EncryptionContext;
}

/** Limit (1..1000, default 100) and an opaque Marker, as the KMS list operations take them. */
function paginate<T>(items: T[], input: Body): { items: T[]; more: Body } {
  const limit = input.Limit ?? 100;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > 1000) throw validation('Limit must be an integer in 1..1000');
  const marker = optionalString(input, 'Marker');
  const start = marker === undefined ? 0 : Number.parseInt(marker, 10);
  if (!Number.isInteger(start) || start < 0 || start > items.length || (marker !== undefined && String(start) !== marker)) {
    throw new WireError('InvalidMarkerException', 'the Marker is not one this service returned');
  }
  const end = Math.min(items.length, start + limit);
  return { items: items.slice(start, end), more: end < items.length ? { Truncated: true, NextMarker: String(end) } : { Truncated: false } };
}
