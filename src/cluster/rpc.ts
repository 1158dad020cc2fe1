import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { DeadlineError, KmsError, PkpError, type KmsErrorCode } from '../core/errors.ts';
import type { ClusterIdentity, ClusterRole, Certificate } from './identity.ts';

/**
 * Signed request/reply between cluster processes, over HTTP (so a front-end's key fetches never
 * depend on the broker: with NATS down it still serves reactively). A request is signed for its
 * call and carries a random id; the reply is signed for that id, so a reply cannot be replayed to
 * another request. Errors travel as a name and a code (never a stack or a value) and come back as
 * the same error classes, so a front-end maps a remote KMS failure exactly as a local one.
 */

interface Request<T> {
  rid: string;
  args: T;
}

type Reply<R> = { ok: true; value: R } | { ok: false; kind: 'kms' | 'pkp' | 'deadline'; code: string; message: string };

export interface RpcContext {
  sender: Certificate;
}

type Handler = (args: never, context: RpcContext) => Promise<unknown>;

const CALL = /^[a-z-]{1,32}$/;
const MAX_REQUEST_BYTES = 64 * 1024;

/** The serving end: calls by name, each open to some roles only. */
export class RpcServer {
  private readonly calls = new Map<string, { roles: readonly ClusterRole[]; handler: Handler }>();

  constructor(private readonly identity: ClusterIdentity) {}

  handle<A, R>(call: string, roles: readonly ClusterRole[], handler: (args: A, context: RpcContext) => Promise<R>): void {
    if (!CALL.test(call)) throw new RangeError(`bad call name ${call}`);
    this.calls.set(call, { roles, handler: handler as Handler });
  }

  /** One request in, one signed reply out. A request that does not verify is refused unheard. */
  async dispatch(call: string, data: Uint8Array): Promise<Uint8Array> {
    let rid = '';
    try {
      const entry = this.calls.get(call);
      if (!entry) throw new PkpError('UnknownCall', `no call ${call.slice(0, 32)}`);
      const { sender, body } = this.identity.open<Request<unknown>>(`rpc:${call}`, data, entry.roles);
      if (typeof body?.rid !== 'string' || !/^[0-9a-f]{32}$/.test(body.rid)) throw new PkpError('Unauthenticated', 'a request needs a request id');
      rid = body.rid;
      const value = await entry.handler(body.args as never, { sender });
      return this.identity.sign(`reply:${rid}`, { ok: true, value } satisfies Reply<unknown>);
    } catch (error) {
      // A refused request's reply is bound to the id it claims (read, not trusted), so its sender
      // learns why; the reply grants nothing.
      return this.identity.sign(`reply:${rid || claimedRid(data)}`, errorReply(error));
    }
  }

  /** An HTTP server for these calls: `POST /rpc/<call>`, the signed request as the body. */
  httpServer(): FastifyInstance {
    const app = Fastify({ logger: false, bodyLimit: MAX_REQUEST_BYTES });
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    app.post<{ Params: { call: string } }>('/rpc/:call', async (req, reply) => {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      return reply.type('application/octet-stream').send(Buffer.from(await this.dispatch(req.params.call, body)));
    });
    return app;
  }
}

/** Sends a signed request and checks that the reply is signed, by one of `from`, for this request. */
export async function callRpc<A, R>(
  baseUrl: string,
  identity: ClusterIdentity,
  call: string,
  args: A,
  from: readonly ClusterRole[],
  timeoutMs: number,
): Promise<R> {
  const rid = randomBytes(16).toString('hex');
  let data: Uint8Array;
  try {
    const response = await fetch(`${baseUrl}/rpc/${call}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.from(identity.sign(`rpc:${call}`, { rid, args } satisfies Request<A>)) as unknown as BodyInit,
      signal: AbortSignal.timeout(timeoutMs),
    });
    data = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    // Refused, timed out or closed: the peer is unavailable now (the caller may retry).
    throw new PkpError('KeyUnavailable', `${call}: no answer from ${baseUrl} (${(error as Error).name})`);
  }
  const reply = identity.open<Reply<R>>(`reply:${rid}`, data, from).body;
  if (reply.ok) return reply.value;
  throw rebuildError(reply);
}

function claimedRid(data: Uint8Array): string {
  try {
    const rid = (JSON.parse(JSON.parse(Buffer.from(data).toString('utf8')).body) as { rid?: unknown }).rid;
    return typeof rid === 'string' && /^[0-9a-f]{32}$/.test(rid) ? rid : '';
  } catch {
    return '';
  }
}

function errorReply(error: unknown): Reply<never> {
  if (error instanceof KmsError) return { ok: false, kind: 'kms', code: error.code, message: error.message };
  if (error instanceof DeadlineError) return { ok: false, kind: 'deadline', code: error.code, message: error.message };
  if (error instanceof PkpError) return { ok: false, kind: 'pkp', code: error.code, message: error.message };
  return { ok: false, kind: 'pkp', code: 'InternalFailure', message: 'internal failure' };
}

function rebuildError(reply: Extract<Reply<never>, { ok: false }>): Error {
  const message = String(reply.message).slice(0, 500);
  if (reply.kind === 'kms') return new KmsError(String(reply.code) as KmsErrorCode, message);
  if (reply.kind === 'deadline') return new DeadlineError(message);
  return new PkpError(String(reply.code).slice(0, 64), message);
}
