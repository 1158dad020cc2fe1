import { Agent } from 'node:http';
import {
  CreateAliasCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, DisableKeyCommand, EnableKeyCommand,
  GenerateDataKeyCommand, KMSClient, ListAliasesCommand, ListKeysCommand, type KeyMetadata as AwsKeyMetadata,
} from '@aws-sdk/client-kms';
import { KmsError, PkpError, type KmsErrorCode } from '../core/errors.ts';
import { CallCounter } from './counts.ts';
import type {
  CountingKms, DecryptedDataKey, EncryptionContext, GeneratedDataKey, KeyMetadata, KeyReason, KmsAdmin, KmsCallCounts, KmsCallListener,
} from './types.ts';

/** How to reach a KMS that speaks the AWS KMS API: `pkp kms`, or AWS KMS itself. */
export interface AwsKmsOptions {
  /** e.g. http://127.0.0.1:9400; without it, the SDK's regional AWS endpoint. */
  endpoint?: string;
  region: string;
  /** Without them, the SDK's default chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** A KMS that does not answer within this long counts as unreachable. Default 5,000 ms. */
  requestTimeoutMs?: number;
  onCall?: KmsCallListener;
}

const KNOWN_CODES = new Set<string>([
  'NotFoundException', 'DisabledException', 'InvalidCiphertextException', 'ThrottlingException', 'AlreadyExistsException',
  'ValidationException', 'IncorrectKeyException', 'AccessDeniedException', 'KMSInternalException',
]);

/**
 * The KMS seam over the network, through @aws-sdk/client-kms. Retries are left to the key tier
 * (its scheduler knows demand from prefetch), so the SDK makes one attempt per call. Plaintext keys
 * arrive in buffers the SDK allocated for this response alone: they are handed over without a copy,
 * and the caller zeroizes them as it does the embedded KMS's.
 */
export class AwsKms implements KmsAdmin, CountingKms {
  private readonly client: KMSClient;
  private readonly counter: CallCounter;

  constructor(options: AwsKmsOptions) {
    if (options.endpoint !== undefined && !/^https?:\/\/[^/]+\/?$/.test(options.endpoint)) {
      throw new PkpError('InvalidConfig', `the KMS endpoint must be http(s)://host[:port], not ${JSON.stringify(options.endpoint.slice(0, 100))}`);
    }
    const timeout = options.requestTimeoutMs ?? 5_000;
    this.client = new KMSClient({
      region: options.region,
      endpoint: options.endpoint,
      credentials: options.credentials,
      maxAttempts: 1,
      // Without throwOnRequestTimeout the SDK only logs a warning at the request timeout and goes on
      // waiting: a KMS that accepts and never answers would hold a key fetch for ever.
      requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }), connectionTimeout: timeout, requestTimeout: timeout, throwOnRequestTimeout: true },
    });
    this.counter = new CallCounter(options.onCall);
  }

  async generateDataKey(keyIdOrAlias: string, context: EncryptionContext, reason: KeyReason): Promise<GeneratedDataKey> {
    this.counter.record('GenerateDataKey', reason);
    const out = await this.call(() => this.client.send(new GenerateDataKeyCommand({ KeyId: keyIdOrAlias, KeySpec: 'AES_256', EncryptionContext: { ...context } })));
    if (!out.Plaintext || !out.CiphertextBlob || !out.KeyId) throw new KmsError('KMSInternalException', 'GenerateDataKey answered without a key');
    return { keyId: bareKeyId(out.KeyId), plaintext: asBuffer(out.Plaintext), ciphertextBlob: Buffer.from(out.CiphertextBlob) };
  }

  async decrypt(ciphertextBlob: Buffer, context: EncryptionContext, reason: KeyReason): Promise<DecryptedDataKey> {
    this.counter.record('Decrypt', reason);
    const out = await this.call(() => this.client.send(new DecryptCommand({ CiphertextBlob: ciphertextBlob, EncryptionContext: { ...context } })));
    if (!out.Plaintext || !out.KeyId) throw new KmsError('KMSInternalException', 'Decrypt answered without a key');
    return { keyId: bareKeyId(out.KeyId), plaintext: asBuffer(out.Plaintext) };
  }

  async describeKey(keyIdOrAlias: string): Promise<KeyMetadata> {
    const out = await this.call(() => this.client.send(new DescribeKeyCommand({ KeyId: keyIdOrAlias })));
    if (!out.KeyMetadata) throw new KmsError('KMSInternalException', 'DescribeKey answered without metadata');
    return this.withAliases(out.KeyMetadata);
  }

  async createKey(description = ''): Promise<KeyMetadata> {
    const out = await this.call(() => this.client.send(new CreateKeyCommand({ Description: description })));
    if (!out.KeyMetadata) throw new KmsError('KMSInternalException', 'CreateKey answered without metadata');
    return toMetadata(out.KeyMetadata, []);
  }

  async listKeys(): Promise<KeyMetadata[]> {
    const ids: string[] = [];
    for (let marker: string | undefined; ; ) {
      const out = await this.call(() => this.client.send(new ListKeysCommand({ Marker: marker })));
      for (const k of out.Keys ?? []) if (k.KeyId) ids.push(k.KeyId);
      if (!out.Truncated || !out.NextMarker) break;
      marker = out.NextMarker;
    }
    return Promise.all(ids.map((id) => this.describeKey(id)));
  }

  async enableKey(keyIdOrAlias: string): Promise<void> {
    await this.call(() => this.client.send(new EnableKeyCommand({ KeyId: keyIdOrAlias })));
  }

  async disableKey(keyIdOrAlias: string): Promise<void> {
    await this.call(() => this.client.send(new DisableKeyCommand({ KeyId: keyIdOrAlias })));
  }

  async createAlias(alias: string, keyIdOrAlias: string): Promise<void> {
    await this.call(() => this.client.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: keyIdOrAlias })));
  }

  counts(): KmsCallCounts {
    return this.counter.snapshot();
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private async withAliases(meta: AwsKeyMetadata): Promise<KeyMetadata> {
    const aliases: string[] = [];
    for (let marker: string | undefined; ; ) {
      const out = await this.call(() => this.client.send(new ListAliasesCommand({ KeyId: meta.KeyId, Marker: marker })));
      for (const a of out.Aliases ?? []) if (a.AliasName) aliases.push(a.AliasName);
      if (!out.Truncated || !out.NextMarker) break;
      marker = out.NextMarker;
    }
    return toMetadata(meta, aliases);
  }

  /** One attempt; every failure becomes a KmsError, and no answer at all is KmsUnreachable. */
  private async call<T>(send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      throw kmsErrorOf(error);
    }
  }
}

function kmsErrorOf(error: unknown): KmsError {
  const e = error as { name?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number } } | null;
  const name = typeof e?.name === 'string' ? e.name : '';
  const message = typeof e?.message === 'string' ? e.message.slice(0, 300) : 'KMS call failed';
  if (e?.$metadata?.httpStatusCode === undefined) {
    if (name === 'ThrottlingException') return new KmsError('ThrottlingException', message);
    return new KmsError('KmsUnreachable', `the KMS did not answer (${name || 'network error'})`);
  }
  if (KNOWN_CODES.has(name)) return new KmsError(name as KmsErrorCode, message);
  // Authentication failures and anything unmodelled: the KMS refused, which the caller cannot fix by retrying.
  if (e.$metadata.httpStatusCode < 500) return new KmsError('AccessDeniedException', `${name}: ${message}`);
  return new KmsError('KMSInternalException', `${name}: ${message}`);
}

/** The SDK's Uint8Array as a Buffer over the same memory, so zeroizing it clears the only copy. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** `arn:aws:kms:…:key/<id>` → `<id>`; a bare id stays as it is. */
function bareKeyId(keyIdOrArn: string): string {
  const at = keyIdOrArn.lastIndexOf(':key/');
  return at < 0 ? keyIdOrArn : keyIdOrArn.slice(at + 5);
}

function toMetadata(meta: AwsKeyMetadata, aliases: string[]): KeyMetadata {
  return {
    keyId: meta.KeyId ?? '',
    arn: meta.Arn ?? '',
    description: meta.Description ?? '',
    enabled: meta.Enabled === true,
    createdAt: meta.CreationDate ? meta.CreationDate.getTime() : 0,
    aliases,
  };
}
