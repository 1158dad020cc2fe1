import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Clock } from '../core/clock.ts';
import { SqsError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import { isSqsAction, type FrontendNode } from './node.ts';
import { verifySigV4 } from './sigv4.ts';
import { internalFailure, invalidParameter, toWire } from './wire-errors.ts';

export interface SqsServerOptions {
  nodes: FrontendNode[];
  /** accessKeyId → secretAccessKey */
  credentials: Map<string, string>;
  clock: Clock;
  logger: Logger;
  metrics?: Metrics;
  /** Reserved: nodes build their own ARNs; kept so callers can pass the service region. */
  region?: string;
  /** Request body limit in bytes. Default 1.5 MiB: a full 256 KiB batch with JSON and base64 overhead fits. */
  bodyLimit?: number;
  connections?: ConnectionLimits;
}

/**
 * How long the endpoint keeps connections that do nothing, and how many it holds. Idle and slow
 * clients are reaped so that they cannot hold sockets (and memory) for ever.
 */
export interface ConnectionLimits {
  /** A socket with no traffic at all for this long is closed. Above the 20 s long poll. Default 60,000 ms. */
  idleMs?: number;
  /** A keep-alive connection with no new request for this long is closed. Default 10,000 ms. */
  keepAliveMs?: number;
  /** A request whose headers have not all arrived after this long gets 408. Default 10,000 ms. */
  headersMs?: number;
  /** Open connections at most; more are refused (closed at once) and counted. Default 10,000. */
  maxConnections?: number;
}

const DEFAULT_LIMITS: Required<ConnectionLimits> = { idleMs: 60_000, keepAliveMs: 10_000, headersMs: 10_000, maxConnections: 10_000 };

const JSON_CONTENT_TYPE = 'application/x-amz-json-1.0';
const TARGET_PREFIX = 'AmazonSQS.';
const DEFAULT_BODY_LIMIT = 1.5 * 1024 * 1024;

/**
 * The SQS endpoint (AWS JSON 1.0 protocol). Every request is authenticated with SigV4 before
 * anything else is looked at, then handed to the next front-end node in turn.
 */
export function createSqsServer(options: SqsServerOptions): FastifyInstance {
  const { nodes, credentials, clock, logger, metrics } = options;
  if (nodes.length === 0) throw new RangeError('createSqsServer needs at least one front-end node');
  const limits = { ...DEFAULT_LIMITS, ...options.connections };
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    connectionTimeout: limits.idleMs,
    keepAliveTimeout: limits.keepAliveMs,
    // A whole request (headers and body) must arrive within the idle limit.
    requestTimeout: limits.idleMs,
  });
  app.server.headersTimeout = limits.headersMs;
  app.server.maxConnections = limits.maxConnections;
  app.server.on('drop', () => metrics?.connectionsRefused.inc());
  let turn = 0;

  // The signature covers the exact bytes, so every body is kept raw and parsed here, after the check.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  const handle = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const started = process.hrtime.bigint(); // latency is an observation of real time, not logic
    const action = actionOf(request.headers['x-amz-target']);
    const label = action !== undefined && isSqsAction(action) ? action : 'Unknown';
    let status = 200;
    try {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const url = request.raw.url ?? '/';
      const q = url.indexOf('?');
      const { principal } = verifySigV4(
        { method: request.method, path: q < 0 ? url : url.slice(0, q), query: q < 0 ? '' : url.slice(q + 1), headers: request.headers, body },
        (accessKeyId) => credentials.get(accessKeyId),
        clock.now(),
      );
      const input = parseRequest(request, action, body);
      const node = nodes[turn++ % nodes.length]!;
      const result = await node.handle(action!, input, { principal, baseUrl: baseUrlOf(request.headers.host) });
      return reply.code(200).header('content-type', JSON_CONTENT_TYPE).header('x-amzn-requestid', randomUUID()).send(JSON.stringify(result));
    } catch (error) {
      const sqsError = error instanceof SqsError ? error : unexpected(logger, error, label);
      status = sqsError.status;
      return sendError(reply, sqsError);
    } finally {
      metrics?.requests.inc({ action: label, code: String(status) });
      metrics?.requestSeconds.observe({ action: label }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

  // The SDK posts to '/' or, with useQueueUrlAsEndpoint, to the queue URL's path: any path will do.
  app.post('/', handle);
  app.post('/*', handle);

  app.setNotFoundHandler((request, reply) => {
    metrics?.requests.inc({ action: 'Unknown', code: '400' });
    return sendError(reply, new SqsError('InvalidAction', `${request.method.slice(0, 16)} is not supported: SQS actions are POST requests.`));
  });

  // Errors raised by fastify itself before the handler ran (body too large, bad framing).
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const action = actionOf(request.headers['x-amz-target']);
    const label = action !== undefined && isSqsAction(action) ? action : 'Unknown';
    let sqsError: SqsError;
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      sqsError = action === 'SendMessageBatch'
        ? new SqsError('BatchRequestTooLong', 'Batch requests cannot be longer than 262144 bytes.')
        : invalidParameter('One or more parameters are invalid. Reason: the request is too large.');
    } else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      sqsError = invalidParameter('The request could not be read.');
    } else {
      sqsError = unexpected(logger, error, label);
    }
    metrics?.requests.inc({ action: label, code: String(sqsError.status) });
    return sendError(reply, sqsError);
  });

  return app;
}

/** Content type, target and JSON checks; runs only for authenticated requests. */
function parseRequest(request: FastifyRequest, action: string | undefined, body: Buffer): unknown {
  const contentType = request.headers['content-type'];
  if (typeof contentType !== 'string' || contentType.split(';', 1)[0]!.trim().toLowerCase() !== JSON_CONTENT_TYPE) {
    throw new SqsError('InvalidAction', `Only the AWS JSON 1.0 protocol is supported: Content-Type must be ${JSON_CONTENT_TYPE}.`);
  }
  if (request.headers['x-amz-target'] === undefined) throw new SqsError('MissingAction', 'The request must contain the header X-Amz-Target.');
  if (action === undefined || !isSqsAction(action)) {
    throw new SqsError('InvalidAction', `The action or operation requested is invalid: ${String(request.headers['x-amz-target']).slice(0, 80)}`);
  }
  if (body.length === 0) return {};
  let text: string;
  let value: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    value = JSON.parse(text);
  } catch {
    throw new SqsError('SerializationException', 'The request body is not valid UTF-8 JSON.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SqsError('SerializationException', 'The request body must be a JSON object.');
  }
  return value;
}

function actionOf(target: string | string[] | undefined): string | undefined {
  if (typeof target !== 'string' || !target.startsWith(TARGET_PREFIX)) return undefined;
  return target.slice(TARGET_PREFIX.length);
}

/** Queue URLs name the host the client used; anything odd in it falls back to localhost. */
function baseUrlOf(host: string | undefined): string {
  return `http://${host !== undefined && /^[A-Za-z0-9.:[\]-]{1,255}$/.test(host) ? host : 'localhost'}`;
}

function sendError(reply: FastifyReply, error: SqsError): FastifyReply {
  const wire = toWire(error);
  return reply
    .code(wire.status)
    .headers(wire.headers)
    .header('content-type', JSON_CONTENT_TYPE)
    .header('x-amzn-requestid', randomUUID())
    .send(JSON.stringify(wire.body));
}

/** Not an SQS error: logged (name and code only, never a body) and answered as InternalFailure. */
function unexpected(logger: Logger, error: unknown, action: string): SqsError {
  const e = error as { name?: unknown; code?: unknown } | null;
  logger.error({ action, error: { name: e?.name, code: e?.code } }, 'SQS request failed');
  return internalFailure();
}
