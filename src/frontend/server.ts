import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
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

/** A request as the SQS layer reads it: node's raw parts, the body still unparsed. */
interface RawRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** What goes back: status, headers and the encoded body. */
interface Answer {
  status: number;
  headers: Record<string, string>;
  payload: string;
}

const EMPTY = Buffer.alloc(0);

/**
 * The SQS endpoint: AWS JSON 1.0 and the Query protocol on the same paths. Every request is authenticated with SigV4 before
 * anything else is looked at, then handed to the next front-end node in turn.
 *
 * JSON-protocol POSTs (what every current SDK sends) are read and answered on node:http directly:
 * fastify's routing, hooks and reply machinery cost more than the rest of the HTTP layer (see the
 * README's bench section). Everything else (Query, GETs, the health routes, framing errors) goes
 * through fastify, and both paths answer through the same `answer`.
 */
export function createSqsServer(options: SqsServerOptions): FastifyInstance {
  const { nodes, credentials, clock, logger, metrics } = options;
  const region = options.region ?? DEFAULT_REGION;
  if (nodes.length === 0) throw new RangeError('createSqsServer needs at least one front-end node');
  const limits = { ...DEFAULT_LIMITS, ...options.connections };
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  let turn = 0;

  const answer = async (req: RawRequest): Promise<Answer> => {
    const started = process.hrtime.bigint(); // latency is an observation of real time, not logic
    const wire = readWire(req.headers, req.url, req.body);
    const label = wire.action !== undefined && isSqsAction(wire.action) ? wire.action : 'Unknown';
    const requestId = randomUUID();
    let status = 200;
    try {
      const q = req.url.indexOf('?');
      const path = q < 0 ? req.url : req.url.slice(0, q);
      const { principal } = verifySigV4(
        { method: req.method, path, query: q < 0 ? '' : req.url.slice(q + 1), headers: req.headers, body: req.body },
        (accessKeyId) => credentials.get(accessKeyId)?.secretAccessKey,
        clock.now(),
        // A captured request must not be replayable as another action or another protocol. A JSON
        // request names its action in headers, so they must be signed. A Query request names it in
        // the (signed) body, and older SDKs (aws-sdk v2) never sign its Content-Type; adding an
        // X-Amz-Target to one makes it a JSON request, whose target must then be signed.
        { region, mustSign: wire.protocol === 'json' ? ['content-type', 'x-amz-target'] : [] },
      );
      const accountId = credentials.get(principal)!.accountId;
      const baseUrl = baseUrlOf(req.headers.host);
      const input = wire.protocol === 'json' ? parseJsonRequest(req.headers, wire.action, req.body) : queryInput(wire, baseUrl, path);
      const node = nodes[turn++ % nodes.length]!;
      const result = await node.handle(wire.action!, input, { principal, baseUrl, accountId });
      if (wire.protocol === 'query') {
        return { status: 200, headers: { 'x-amzn-requestid': requestId, 'content-type': XML_CONTENT_TYPE }, payload: encodeQueryResult(wire.action!, result, requestId) };
      }
      return { status: 200, headers: { 'x-amzn-requestid': requestId, 'content-type': JSON_CONTENT_TYPE }, payload: JSON.stringify(result) };
    } catch (error) {
      const sqsError = error instanceof SqsError ? error : unexpected(logger, error, label);
      status = sqsError.status;
      return errorAnswer(wire.protocol, sqsError, requestId);
    } finally {
      if (metrics) {
        metrics.countRequest(label, String(status)).inc();
        metrics.requestSeconds.observe({ action: label }, Number(process.hrtime.bigint() - started) / 1e9);
      }
    }
  };

  /** A body over the limit: refused unread, as fastify does, with the error SQS gives. */
  const tooLarge = (action: string | undefined, protocol: Protocol): Answer => {
    const sqsError = action === 'SendMessageBatch'
      ? new SqsError('BatchRequestTooLong', 'Batch requests cannot be longer than 1048576 bytes.')
      : invalidParameter('One or more parameters are invalid. Reason: the request is too large.');
    metrics?.countRequest(action !== undefined && isSqsAction(action) ? action : 'Unknown', String(sqsError.status)).inc();
    return errorAnswer(protocol, sqsError, randomUUID());
  };

  /** The JSON protocol's POSTs: the body is collected, answered, written. */
  const serveJson = (req: IncomingMessage, res: ServerResponse): void => {
    const refuse = () => write(res, tooLarge(actionOf(req.headers['x-amz-target']), 'json'));
    if (Number(req.headers['content-length']) > bodyLimit) return refuse();
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return; // the rest is read and dropped
      size += chunk.length;
      if (size <= bodyLimit) return void chunks.push(chunk);
      refused = true;
      chunks.length = 0;
      refuse();
    });
    req.on('end', () => {
      if (refused) return;
      const body = chunks.length === 1 ? chunks[0]! : chunks.length === 0 ? EMPTY : Buffer.concat(chunks, size);
      void answer({ method: 'POST', url: req.url ?? '/', headers: req.headers, body }).then((a) => write(res, a));
    });
    req.on('error', () => {}); // an aborted upload: nobody to answer
  };

  const app = Fastify({
    logger: false,
    bodyLimit,
    clientErrorHandler: answerClientError,
    serverFactory: (route) => createServer((req, res) => (req.method === 'POST' && protocolOf(req.headers) === 'json' ? serveJson(req, res) : route(req, res))),
  });
  app.server.setTimeout(limits.idleMs);
  app.server.keepAliveTimeout = limits.keepAliveMs;
  // A whole request (headers and body) must arrive within the idle limit.
  app.server.requestTimeout = limits.idleMs;
  app.server.headersTimeout = limits.headersMs;
  app.server.maxConnections = limits.maxConnections;
  app.server.on('drop', () => metrics?.connectionsRefused.inc());

  // The signature covers the exact bytes, so every body is kept raw and parsed here, after the check.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  const handle = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const a = await answer({ method: request.method, url: request.raw.url ?? '/', headers: request.headers, body: Buffer.isBuffer(request.body) ? request.body : EMPTY });
    return reply.code(a.status).headers(a.headers).send(a.payload);
  };

  // The SDK posts to '/' or, with useQueueUrlAsEndpoint, to the queue URL's path: any path will do.
  app.post('/', handle);
  app.post('/*', handle);
  // Query clients may also send an action as a GET with its parameters in the query string.
  app.get('/', handle);
  app.get('/*', handle);

  app.setNotFoundHandler((request, reply) => {
    metrics?.countRequest('Unknown', '400').inc();
    const a = errorAnswer(protocolOf(request.headers), new SqsError('InvalidAction', `${request.method.slice(0, 16)} is not supported: SQS actions are POST or GET requests.`), randomUUID());
    return reply.code(a.status).headers(a.headers).send(a.payload);
  });

  // Errors raised by fastify itself before the handler ran (body too large, bad framing).
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const protocol = protocolOf(request.headers);
    // The body was not read: a Query request's action is known only when it came in the URL.
    const action = protocol === 'json' ? actionOf(request.headers['x-amz-target']) : readWire(request.headers, request.raw.url ?? '/', EMPTY).action;
    let a: Answer;
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      a = tooLarge(action, protocol);
    } else {
      const label = action !== undefined && isSqsAction(action) ? action : 'Unknown';
      const sqsError = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500
        ? invalidParameter('The request could not be read.')
        : unexpected(logger, error, label);
      metrics?.countRequest(label, String(sqsError.status)).inc();
      a = errorAnswer(protocol, sqsError, randomUUID());
    }
    return reply.code(a.status).headers(a.headers).send(a.payload);
  });

  return app;
}

function write(res: ServerResponse, a: Answer): void {
  a.headers['content-length'] = String(Buffer.byteLength(a.payload));
  res.writeHead(a.status, a.headers);
  res.end(a.payload);
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
function protocolOf(headers: IncomingHttpHeaders): Protocol {
  if (headers['x-amz-target'] !== undefined || isJsonType(headers['content-type'])) return 'json';
  return 'query';
}

function isJsonType(contentType: string | undefined): boolean {
  if (contentType === JSON_CONTENT_TYPE) return true; // as SDKs send it
  return typeof contentType === 'string' && contentType.split(';', 1)[0]!.trim().toLowerCase() === JSON_CONTENT_TYPE;
}

/** What can be read of a request before it is authenticated: its protocol and action name. */
function readWire(headers: IncomingHttpHeaders, url: string, body: Buffer): WireRequest {
  const protocol = protocolOf(headers);
  if (protocol === 'json') return { protocol, action: actionOf(headers['x-amz-target']) };
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
function parseJsonRequest(headers: IncomingHttpHeaders, action: string | undefined, body: Buffer): unknown {
  if (!isJsonType(headers['content-type'])) {
    throw new SqsError('InvalidAction', `Only the AWS JSON 1.0 protocol is supported: Content-Type must be ${JSON_CONTENT_TYPE}.`);
  }
  if (headers['x-amz-target'] === undefined) throw new SqsError('MissingAction', 'The request must contain the header X-Amz-Target.');
  if (action === undefined || !isSqsAction(action)) {
    throw new SqsError('InvalidAction', `The action or operation requested is invalid: ${String(headers['x-amz-target']).slice(0, 80)}`);
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

function errorAnswer(protocol: Protocol, error: SqsError, requestId: string): Answer {
  const wire = toWire(error);
  if (protocol === 'query') {
    return { status: wire.status, headers: { 'x-amzn-requestid': requestId, 'content-type': XML_CONTENT_TYPE }, payload: encodeQueryError(error, requestId) };
  }
  return { status: wire.status, headers: { 'x-amzn-requestid': requestId, ...wire.headers, 'content-type': JSON_CONTENT_TYPE }, payload: JSON.stringify(wire.body) };
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
