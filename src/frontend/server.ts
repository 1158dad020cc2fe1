import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Clock } from '../core/clock.ts';
import { SqsError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Metrics } from '../core/metrics.ts';
import { isSqsAction, type FrontendNode } from './node.ts';
import { decodeQueryInput, encodeQueryError, encodeQueryResult, parseForm, QUERY_VERSIONS, XML_CONTENT_TYPE } from './query-codec.ts';
import { QUERY_MODEL } from './query-model.ts';
import { DEFAULT_REGION } from './queue-attributes.ts';
import { verifySigV4 } from './sigv4.ts';
import { internalFailure, invalidParameter, toWire } from './wire-errors.ts';

export interface SqsServerOptions {
  nodes: FrontendNode[];
  /** accessKeyId → its secret and its account */
  credentials: Map<string, { secretAccessKey: string; accountId: string }>;
  clock: Clock;
  logger: Logger;
  metrics?: Metrics;
  /** The service's region: requests signed for another are refused. Default us-east-1. */
  region?: string;
  /** Request body limit in bytes. Default 4 MiB: a full 1 MiB batch fits, even form-encoded (up to 3 bytes a byte). */
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
const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;
/** Stateless between calls (no streaming), so one decoder serves every request. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The SQS endpoint: AWS JSON 1.0 and the Query protocol on the same paths. Every request is authenticated with SigV4 before
 * anything else is looked at, then handed to the next front-end node in turn.
 */
export function createSqsServer(options: SqsServerOptions): FastifyInstance {
  const { nodes, credentials, clock, logger, metrics } = options;
  const region = options.region ?? DEFAULT_REGION;
  if (nodes.length === 0) throw new RangeError('createSqsServer needs at least one front-end node');
  const limits = { ...DEFAULT_LIMITS, ...options.connections };
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    clientErrorHandler: answerClientError,
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
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const wire = readWire(request, body);
    const label = wire.action !== undefined && isSqsAction(wire.action) ? wire.action : 'Unknown';
    const requestId = randomUUID();
    let status = 200;
    try {
      const url = request.raw.url ?? '/';
      const q = url.indexOf('?');
      const { principal } = verifySigV4(
        { method: request.method, path: q < 0 ? url : url.slice(0, q), query: q < 0 ? '' : url.slice(q + 1), headers: request.headers, body },
        (accessKeyId) => credentials.get(accessKeyId)?.secretAccessKey,
        clock.now(),
        // A captured request must not be replayable as another action or another protocol. A JSON
        // request names its action in headers, so they must be signed. A Query request names it in
        // the (signed) body, and older SDKs (aws-sdk v2) never sign its Content-Type; adding an
        // X-Amz-Target to one makes it a JSON request, whose target must then be signed.
        { region, mustSign: wire.protocol === 'json' ? ['content-type', 'x-amz-target'] : [] },
      );
      const accountId = credentials.get(principal)!.accountId;
      const baseUrl = baseUrlOf(request.headers.host);
      const input = wire.protocol === 'json' ? parseJsonRequest(request, wire.action, body) : queryInput(wire, baseUrl, q < 0 ? url : url.slice(0, q));
      const node = nodes[turn++ % nodes.length]!;
      const result = await node.handle(wire.action!, input, { principal, baseUrl, accountId });
      reply.code(200).header('x-amzn-requestid', requestId);
      if (wire.protocol === 'query') return reply.header('content-type', XML_CONTENT_TYPE).send(encodeQueryResult(wire.action!, result, requestId));
      return reply.header('content-type', JSON_CONTENT_TYPE).send(JSON.stringify(result));
    } catch (error) {
      const sqsError = error instanceof SqsError ? error : unexpected(logger, error, label);
      status = sqsError.status;
      return sendError(reply, wire.protocol, sqsError, requestId);
    } finally {
      if (metrics) {
        metrics.countRequest(label, String(status)).inc();
        metrics.requestSecondsOf(label).observe(Number(process.hrtime.bigint() - started) / 1e9);
      }
    }
  };

  // The SDK posts to '/' or, with useQueueUrlAsEndpoint, to the queue URL's path: any path will do.
  app.post('/', handle);
  app.post('/*', handle);
  // Query clients may also send an action as a GET with its parameters in the query string.
  app.get('/', handle);
  app.get('/*', handle);

  app.setNotFoundHandler((request, reply) => {
    metrics?.requests.inc({ action: 'Unknown', code: '400' });
    return sendError(reply, protocolOf(request), new SqsError('InvalidAction', `${request.method.slice(0, 16)} is not supported: SQS actions are POST or GET requests.`), randomUUID());
  });

  // Errors raised by fastify itself before the handler ran (body too large, bad framing).
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const protocol = protocolOf(request);
    // The body was not read: a Query request's action is known only when it came in the URL.
    const action = protocol === 'json' ? actionOf(request.headers['x-amz-target']) : readWire(request, Buffer.alloc(0)).action;
    const label = action !== undefined && isSqsAction(action) ? action : 'Unknown';
    let sqsError: SqsError;
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      sqsError = action === 'SendMessageBatch'
        ? new SqsError('BatchRequestTooLong', 'Batch requests cannot be longer than 1048576 bytes.')
        : invalidParameter('One or more parameters are invalid. Reason: the request is too large.');
    } else if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      sqsError = invalidParameter('The request could not be read.');
    } else {
      sqsError = unexpected(logger, error, label);
    }
    metrics?.requests.inc({ action: label, code: String(sqsError.status) });
    return sendError(reply, protocol, sqsError, randomUUID());
  });

  return app;
}

type Protocol = 'json' | 'query';

interface WireRequest {
  protocol: Protocol;
  /** The action named: X-Amz-Target for JSON, the Action parameter for Query. */
  action: string | undefined;
  /** Query only: the query string's and the form body's parameters. */
  params?: Map<string, string>;
}

/**
 * JSON 1.0 when the client says so (its content type or an X-Amz-Target); otherwise the Query
 * protocol, whose clients send forms (or GETs) without a target.
 */
function protocolOf(request: FastifyRequest): Protocol {
  const contentType = request.headers['content-type'];
  const type = typeof contentType === 'string' ? contentType.split(';', 1)[0]!.trim().toLowerCase() : '';
  if (type === JSON_CONTENT_TYPE || request.headers['x-amz-target'] !== undefined) return 'json';
  return 'query';
}

/** What can be read of a request before it is authenticated: its protocol and action name. */
function readWire(request: FastifyRequest, body: Buffer): WireRequest {
  const protocol = protocolOf(request);
  if (protocol === 'json') return { protocol, action: actionOf(request.headers['x-amz-target']) };
  const url = request.raw.url ?? '/';
  const q = url.indexOf('?');
  const params = parseForm(q < 0 ? '' : url.slice(q + 1));
  if (body.length > 0) parseForm(body.toString('utf8'), params);
  return { protocol, action: params.get('Action'), params };
}

/** Action and version checks, then the parameters in the JSON form the actions take. */
function queryInput(wire: WireRequest, baseUrl: string, path: string): unknown {
  const action = wire.action;
  if (action === undefined || action === '') throw new SqsError('MissingAction', 'The request must contain the parameter Action.');
  if (!isSqsAction(action)) throw new SqsError('InvalidAction', `The action ${action.slice(0, 64)} is not valid for this endpoint.`);
  const version = wire.params!.get('Version');
  if (version !== undefined && !QUERY_VERSIONS.has(version)) {
    throw new SqsError('NoSuchVersion', `The requested version (${version.slice(0, 32)}) of service AmazonSQS does not exist.`);
  }
  const input = decodeQueryInput(action, wire.params!);
  // Older clients post to the queue's URL and leave QueueUrl out: the path names the queue.
  if (input.QueueUrl === undefined && /^\/[^/]+\/[^/]+\/?$/.test(path) && 'QueueUrl' in (QUERY_MODEL[action]?.input ?? {})) {
    input.QueueUrl = `${baseUrl}${path}`;
  }
  return input;
}

/** Content type, target and JSON checks; runs only for authenticated requests. */
function parseJsonRequest(request: FastifyRequest, action: string | undefined, body: Buffer): unknown {
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
    text = UTF8.decode(body);
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

function sendError(reply: FastifyReply, protocol: Protocol, error: SqsError, requestId: string): FastifyReply {
  const wire = toWire(error);
  reply.code(wire.status).header('x-amzn-requestid', requestId);
  if (protocol === 'query') return reply.header('content-type', XML_CONTENT_TYPE).send(encodeQueryError(error, requestId));
  return reply.headers(wire.headers).header('content-type', JSON_CONTENT_TYPE).send(JSON.stringify(wire.body));
}

/**
 * Requests node's HTTP parser refuses before any handler runs (headers over 16 KiB, bad framing)
 * still get an SQS error: an XML ErrorResponse (Query clients) with the x-amzn-query-error header
 * (JSON clients read the code from it). The protocol cannot be known, so both are given.
 */
function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) return;
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const sqsError = tooLarge
    ? new SqsError('RequestHeaderSectionTooLarge', 'The request headers are too large: at most 16 KiB.', 431)
    : invalidParameter('The request could not be read.');
  const requestId = randomUUID();
  const body = encodeQueryError(sqsError, requestId);
  socket.end(
    `HTTP/1.1 ${sqsError.status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
    `Content-Type: ${XML_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `x-amzn-RequestId: ${requestId}\r\nx-amzn-query-error: ${sqsError.code};Sender\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Not an SQS error: logged (name and code only, never a body) and answered as InternalFailure. */
function unexpected(logger: Logger, error: unknown, action: string): SqsError {
  const e = error as { name?: unknown; code?: unknown } | null;
  logger.error({ action, error: { name: e?.name, code: e?.code } }, 'SQS request failed');
  return internalFailure();
}
