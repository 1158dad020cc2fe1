import type { EventBus, QueueOp } from '../bus/types.ts';
import type { Clock } from '../core/clock.ts';
import { uuidv7 } from '../core/uuid7.ts';
import { hexDigest } from '../crypto/digest.ts';
import type { QueueStatsSchedule } from './queue-stats-schedule.ts';
import { DeadlineError, KmsError, PkpError, SqsError } from '../core/errors.ts';
import { describeError, silentLogger, type Logger } from '../core/log.ts';
import type { MessageKeyring } from '../keycache/keyring-types.ts';
import type { MessageStore, MoveTaskRecord, NewMessage, QueueRecord, ReceivedMessage } from '../store/types.ts';
import { md5OfBody, md5OfMessageAttributes, type MessageAttribute } from './md5.ts';
import { TRACE_HEADER_KEY, attributeSelector, encodeAttributes, parseMessageAttributes, parseTraceHeader } from './message-attributes.ts';
import { checkMessageSize, validateBody } from './message-content.ts';
import {
  asParams, batchEntries, optionalInt, optionalString, optionalStringList, requiredInt, requiredString, type BatchEntry, type Params,
} from './params.ts';
import {
  DEFAULT_REGION, attributeUpdate, conflictingAttribute, effectiveAttributes, intAttribute, isFifoName, isFifoQueue, isValidQueueName, parseAttributeNames,
  parseQueueAttributes, queueArn, queueAttributeView, validateQueueName,
} from './queue-attributes.ts';
import { evaluatePolicy } from './queue-policy.ts';
import { allowsSource, parseQueueArn, redrivePolicyOf } from './redrive.ts';
import { queueRefFromUrl, queueUrl } from './queue-url.ts';
import { defaultAccountId, isAccountId, principalArnOf } from './accounts.ts';
import { messageOutput, requestedSystemAttributes, type OpenedMessage } from './receive-output.ts';
import type { ReceiveWaiters } from './waiters.ts';
import { internalFailure, invalidParameter, missingParameter, queryCodeOf, queueDoesNotExist, serviceUnavailable } from './wire-errors.ts';

export interface FrontendNodeOptions {
  nodeId: string;
  store: MessageStore;
  keyring: MessageKeyring;
  bus: EventBus;
  clock: Clock;
  waiters: ReceiveWaiters;
  region?: string;
  logger?: Logger;
  /**
   * The node's key cache, read (counts and times only) right after a send's key lookup so the
   * access event says whether the key was a hit. Without it `keyHit` is left out.
   */
  keyCache?: KeyOutcomeSource;
  /** When to publish a `queue-stats` event (backlog from the store); shared by the nodes of one store. Default: never. */
  queueStats?: QueueStatsSchedule;
}

/**
 * What a node reads of its key cache to describe a request's key lookup: counters, a flag and an
 * expiry. (KeyCache satisfies it.) Nothing read through it is published but those.
 */
export interface KeyOutcomeSource {
  readonly stats: { readonly hits: number; readonly misses: number };
  /** True right after a hit that was the first use of a prefetched key. */
  readonly lastHitWasPrefetchedFirstUse?: boolean;
  peekEncrypt(queueId: string, principal: string): { readonly key: { readonly expiresAt: number } } | undefined;
}

/** What one request's key lookup did, as published on its access event. */
interface KeyOutcome {
  keyHit: boolean;
  keyExpiresAt?: number;
  prefetchedFirstUse?: boolean;
}

export interface RequestContext {
  /** The authenticated access key id. */
  principal: string;
  /** `http://<host>`: queue URLs are built on it. */
  baseUrl: string;
  /** The principal's account. Default: the account a credential has when none is configured. */
  accountId?: string;
}

/** One request as the actions see it: who, in which account, and the IAM action it needs. */
interface Call extends RequestContext {
  accountId: string;
  principalArn: string;
  /** The IAM action name policies grant: batches need their base action. */
  iamAction: string;
}

const IAM_ACTION: Readonly<Record<string, string>> = {
  SendMessageBatch: 'SendMessage',
  DeleteMessageBatch: 'DeleteMessage',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibility',
};

/** The actions AddPermission may grant (SQS's list). */
const GRANTABLE = new Set([
  '*', 'SendMessage', 'ReceiveMessage', 'DeleteMessage', 'ChangeMessageVisibility', 'GetQueueAttributes', 'GetQueueUrl',
  'ListDeadLetterSourceQueues', 'PurgeQueue',
]);

export const SQS_ACTIONS = [
  'CreateQueue', 'GetQueueUrl', 'ListQueues', 'DeleteQueue', 'GetQueueAttributes', 'SetQueueAttributes',
  'SendMessage', 'SendMessageBatch', 'ReceiveMessage', 'DeleteMessage', 'DeleteMessageBatch',
  'ChangeMessageVisibility', 'ChangeMessageVisibilityBatch', 'PurgeQueue', 'AddPermission', 'RemovePermission',
  'ListDeadLetterSourceQueues', 'TagQueue', 'UntagQueue', 'ListQueueTags',
  'StartMessageMoveTask', 'CancelMessageMoveTask', 'ListMessageMoveTasks',
] as const;
export type SqsAction = (typeof SQS_ACTIONS)[number];

export function isSqsAction(action: string): action is SqsAction {
  return (SQS_ACTIONS as readonly string[]).includes(action);
}

/** The most a batch may carry, body and attributes of all entries together. */
const MAX_BATCH_BYTES = 1_048_576;
/** Expired messages are dropped lazily, at most this often per queue (clock time). */
const RETENTION_SWEEP_MS = 60_000;
const MAX_VISIBILITY_TIMEOUT = 43_200;
/** SQS: one purge per queue per 60 s; a deleted queue's name is free again after 60 s. */
const PURGE_INTERVAL_MS = 60_000;
const QUEUE_REUSE_MS = 60_000;
/** FIFO deduplication window. */
const DEDUP_WINDOW_MS = 5 * 60_000;
const MAX_TAGS = 50;
/** How long a message bound for the dead-letter queue stays leased: time enough to reseal it. */
const MOVE_LEASE_MS = 30_000;
/** A queue-stats event's backlog is counted up to this many messages. */
const BACKLOG_COUNTED_UP_TO = 10_000;

/** A message validated and ready to seal. */
interface Prepared {
  messageId: string;
  body: string;
  bodyBytes: number;
  attributes: Record<string, MessageAttribute>;
  /** Body plus attribute bytes, for the batch limit. */
  size: number;
  delaySeconds: number;
  md5OfBody: string;
  md5OfMessageAttributes: string | null;
  md5OfMessageSystemAttributes: string | null;
  groupId?: string;
  dedupId?: string;
  /** FIFO: given by the store once the message is stored. */
  sequenceNumber?: string;
}

type Result = Record<string, unknown>;
type FailedEntry = { Id: string; SenderFault: boolean; Code: string; Message: string };

/**
 * One front-end node: validates SQS requests, encrypts on send and decrypts on receive through
 * its keyring, keeps ciphertext in the store, and reports each queue-level request to the bus.
 * It never logs a body, an attribute value or a key.
 */
export class FrontendNode {
  readonly nodeId: string;
  private readonly store: MessageStore;
  private readonly keyring: MessageKeyring;
  private readonly bus: EventBus;
  private readonly clock: Clock;
  private readonly waiters: ReceiveWaiters;
  private readonly region: string;
  private readonly logger: Logger;
  /** Per queue, when this node last dropped expired messages. */
  private readonly lastSweep = new Map<string, number>();
  private readonly keyCache: KeyOutcomeSource | undefined;
  private readonly queueStats: QueueStatsSchedule | undefined;
  private longPolls = 0;

  constructor(options: FrontendNodeOptions) {
    this.nodeId = options.nodeId;
    this.store = options.store;
    this.keyring = options.keyring;
    this.bus = options.bus;
    this.clock = options.clock;
    this.waiters = options.waiters;
    this.region = options.region ?? DEFAULT_REGION;
    this.logger = options.logger ?? silentLogger;
    this.keyCache = options.keyCache;
    this.queueStats = options.queueStats;
  }

  /** ReceiveMessage calls of this node now parked waiting for messages. */
  get activeLongPolls(): number {
    return this.longPolls;
  }

  async handle(action: string, input: unknown, ctx: RequestContext): Promise<Result> {
    if (!isSqsAction(action)) throw new SqsError('InvalidAction', `The action ${action.slice(0, 64)} is not valid for this endpoint.`);
    const accountId = ctx.accountId ?? defaultAccountId(ctx.principal);
    const call: Call = {
      ...ctx, accountId, principalArn: principalArnOf(accountId, ctx.principal), iamAction: IAM_ACTION[action] ?? action,
    };
    try {
      return await this.dispatch(action, asParams(input), call);
    } catch (error) {
      throw this.toSqsError(error, action);
    }
  }

  private dispatch(action: SqsAction, p: Params, ctx: Call): Promise<Result> {
    switch (action) {
      case 'CreateQueue': return this.createQueue(p, ctx);
      case 'GetQueueUrl': return this.getQueueUrl(p, ctx);
      case 'ListQueues': return this.listQueues(p, ctx);
      case 'DeleteQueue': return this.deleteQueue(p, ctx);
      case 'GetQueueAttributes': return this.getQueueAttributes(p, ctx);
      case 'SetQueueAttributes': return this.setQueueAttributes(p, ctx);
      case 'SendMessage': return this.sendMessage(p, ctx);
      case 'SendMessageBatch': return this.sendMessageBatch(p, ctx);
      case 'ReceiveMessage': return this.receiveMessage(p, ctx);
      case 'DeleteMessage': return this.deleteMessage(p, ctx);
      case 'DeleteMessageBatch': return this.deleteMessageBatch(p, ctx);
      case 'ChangeMessageVisibility': return this.changeMessageVisibility(p, ctx);
      case 'ChangeMessageVisibilityBatch': return this.changeMessageVisibilityBatch(p, ctx);
      case 'PurgeQueue': return this.purgeQueue(p, ctx);
      case 'AddPermission': return this.addPermission(p, ctx);
      case 'RemovePermission': return this.removePermission(p, ctx);
      case 'ListDeadLetterSourceQueues': return this.listDeadLetterSourceQueues(p, ctx);
      case 'TagQueue': return this.tagQueue(p, ctx);
      case 'UntagQueue': return this.untagQueue(p, ctx);
      case 'ListQueueTags': return this.listQueueTags(p, ctx);
      case 'StartMessageMoveTask': return this.startMessageMoveTask(p, ctx);
      case 'CancelMessageMoveTask': return this.cancelMessageMoveTask(p, ctx);
      case 'ListMessageMoveTasks': return this.listMessageMoveTasks(p, ctx);
    }
  }

  // ---- queues ----

  private async createQueue(p: Params, ctx: Call): Promise<Result> {
    const name = validateQueueName(p.QueueName);
    const fifo = isFifoName(name);
    const attributes = parseQueueAttributes(p.Attributes, { fifo, creating: true });
    if (fifo) {
      const declared = (p.Attributes as Record<string, unknown> | undefined)?.FifoQueue;
      if (typeof declared !== 'string' || declared.toLowerCase() !== 'true') {
        throw invalidParameter('The attribute FifoQueue must be set to true for a queue name ending in .fifo.');
      }
      attributes.FifoQueue = 'true';
      checkFifoAttributes(attributes);
    }
    const tags = parseTags(p.tags);
    await this.checkRedriveTarget(attributes, ctx.accountId, name);
    const now = this.clock.now();
    const deletedAt = await this.store.queueDeletedAt(name, ctx.accountId);
    if (deletedAt !== undefined && now - deletedAt < QUEUE_REUSE_MS && !(await this.store.getQueueByName(name, ctx.accountId))) {
      throw new SqsError('QueueDeletedRecently', 'You must wait 60 seconds after deleting a queue before you can create another with the same name.');
    }
    // Tags are applied only when the queue is created: an existing queue keeps its own, as in SQS.
    const result = await this.store.createQueue(name, attributes, now, ctx.accountId, tags);
    if (result.outcome === 'exists') {
      const differing = conflictingAttribute(result.queue, attributes);
      if (differing !== undefined) {
        throw new SqsError('QueueNameExists', `A queue already exists with the same name and a different value for attribute ${differing}`);
      }
    }
    this.report(result.queue.queueId, ctx, 'other');
    return { QueueUrl: queueUrl(ctx.baseUrl, ctx.accountId, name) };
  }

  private async getQueueUrl(p: Params, ctx: Call): Promise<Result> {
    const name = requiredString(p, 'QueueName');
    const owner = optionalString(p, 'QueueOwnerAWSAccountId', 64);
    if (!isValidQueueName(name)) throw queueDoesNotExist();
    const queue = this.authorized(await this.store.getQueueByName(name, owner ?? ctx.accountId), ctx);
    this.report(queue.queueId, ctx, 'other');
    return { QueueUrl: queueUrl(ctx.baseUrl, queue.accountId, name) };
  }

  private async listQueues(p: Params, ctx: Call): Promise<Result> {
    const prefix = optionalString(p, 'QueueNamePrefix', 80);
    const maxResults = optionalInt(p, 'MaxResults', 1, 1000);
    const after = decodeNextToken(optionalString(p, 'NextToken', 1024));
    const names = (await this.store.listQueues(prefix || undefined, ctx.accountId)).map((q) => q.name)
      .filter((n) => (prefix ? n.startsWith(prefix) : true) && (after === undefined || n > after))
      .sort();
    const page = names.slice(0, maxResults ?? 1000);
    const result: Result = { QueueUrls: page.map((n) => queueUrl(ctx.baseUrl, ctx.accountId, n)) };
    if (maxResults !== undefined && names.length > page.length) result.NextToken = encodeNextToken(page[page.length - 1]!);
    return result;
  }

  private async deleteQueue(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    this.report(queue.queueId, ctx, 'other');
    await this.store.deleteQueue(queue.queueId, this.clock.now());
    this.lastSweep.delete(queue.queueId);
    this.queueStats?.forget(queue.queueId);
    this.waiters.forget(queue.queueId);
    return {};
  }

  private async getQueueAttributes(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const wanted = parseAttributeNames(p.AttributeNames);
    this.report(queue.queueId, ctx, 'other');
    const now = this.clock.now();
    return { Attributes: await queueAttributeView(queue, wanted, () => this.store.counts(queue.queueId, now), this.region) };
  }

  private async setQueueAttributes(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    if (p.Attributes === undefined || p.Attributes === null) throw missingParameter('Attributes');
    const requested = parseQueueAttributes(p.Attributes, { fifo: isFifoQueue(queue), creating: false });
    if (isFifoQueue(queue)) checkFifoAttributes({ ...queue.attributes, ...requested });
    await this.checkRedriveTarget(requested, queue.accountId, queue.name);
    this.report(queue.queueId, ctx, 'other');
    if (Object.keys(requested).length === 0) return {};
    const updated = await this.store.setQueueAttributes(queue.queueId, attributeUpdate(queue.attributes, requested), this.clock.now());
    if (!updated) throw queueDoesNotExist();
    return {};
  }

  private async purgeQueue(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    this.report(queue.queueId, ctx, 'other');
    const now = this.clock.now();
    if (queue.lastPurgedAt !== null && now - queue.lastPurgedAt < PURGE_INTERVAL_MS) {
      throw new SqsError('PurgeQueueInProgress', `Only one PurgeQueue operation on ${queue.name} is allowed every 60 seconds.`, 403);
    }
    await this.store.purgeQueue(queue.queueId, now);
    return {};
  }

  // ---- tags ----

  private async tagQueue(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    if (p.Tags === undefined || p.Tags === null) throw missingParameter('Tags');
    const added = parseTags(p.Tags);
    const tags = { ...queue.tags, ...added };
    if (Object.keys(tags).length > MAX_TAGS) throw invalidParameter(`Too many tags: a queue can have at most ${MAX_TAGS}.`);
    this.report(queue.queueId, ctx, 'other');
    if (!(await this.store.setQueueTags(queue.queueId, tags))) throw queueDoesNotExist();
    return {};
  }

  private async untagQueue(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const keys = optionalStringList(p, 'TagKeys');
    if (!keys || keys.length === 0) throw missingParameter('TagKeys');
    const tags = { ...queue.tags };
    for (const k of keys) delete tags[k];
    this.report(queue.queueId, ctx, 'other');
    if (!(await this.store.setQueueTags(queue.queueId, tags))) throw queueDoesNotExist();
    return {};
  }

  private async listQueueTags(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    this.report(queue.queueId, ctx, 'other');
    return Object.keys(queue.tags).length > 0 ? { Tags: { ...queue.tags } } : {};
  }

  // ---- sending ----

  private async sendMessage(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const message = this.prepare(queue, p);
    await this.seal(queue, ctx, [message], message.bodyBytes);
    return sentOutput(message);
  }

  private async sendMessageBatch(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const entries = batchEntries(p, 'SendMessageBatchRequestEntry');
    const ready: { id: string; message: Prepared }[] = [];
    const failed: FailedEntry[] = [];
    for (const entry of entries) {
      try {
        ready.push({ id: entry.id, message: this.prepare(queue, entry.params) });
      } catch (error) {
        failed.push(failedEntry(entry, error));
      }
    }
    const total = ready.reduce((sum, r) => sum + r.message.size, 0);
    if (total > MAX_BATCH_BYTES) {
      throw new SqsError('BatchRequestTooLong', `Batch requests cannot be longer than ${MAX_BATCH_BYTES} bytes. You have sent ${total} bytes.`);
    }
    const bytes = ready.reduce((sum, r) => sum + r.message.bodyBytes, 0);
    if (ready.length > 0) await this.seal(queue, ctx, ready.map((r) => r.message), bytes);
    else this.report(queue.queueId, ctx, 'send', bytes);
    return {
      Successful: ready.map((r) => ({ Id: r.id, ...sentOutput(r.message) })),
      Failed: failed,
    };
  }

  /** Validates one message against the queue's limits. Throws the SQS error for the first fault. */
  private prepare(queue: QueueRecord, p: Params): Prepared {
    const bodyBytes = validateBody(p.MessageBody);
    const body = p.MessageBody as string;
    const parsed = parseMessageAttributes(p.MessageAttributes);
    const size = bodyBytes + parsed.bytes;
    checkMessageSize(size, intAttribute(queue, 'MaximumMessageSize'));
    const fifo = isFifoQueue(queue);
    if (fifo && p.DelaySeconds !== undefined && p.DelaySeconds !== null) {
      throw invalidParameter(`Value ${String(p.DelaySeconds).slice(0, 16)} for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.`);
    }
    const delaySeconds = optionalInt(p, 'DelaySeconds', 0, 900) ?? intAttribute(queue, 'DelaySeconds');
    const groupId = fifoId(p, 'MessageGroupId');
    let dedupId = fifoId(p, 'MessageDeduplicationId');
    if (fifo) {
      if (groupId === undefined) throw missingParameter('MessageGroupId');
      if (dedupId === undefined) {
        if (effectiveAttributes(queue.attributes).ContentBasedDeduplication !== 'true') {
          throw invalidParameter('The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly');
        }
        dedupId = hexDigest('sha256', body);
      }
    } else if (dedupId !== undefined) {
      // MessageGroupId is accepted on standard queues (fair queues); a deduplication id is not.
      throw invalidParameter('The request includes a parameter that is not valid for this queue type: MessageDeduplicationId.');
    }
    const trace = parseTraceHeader(p.MessageSystemAttributes);
    const hasAttributes = Object.keys(parsed.attributes).length > 0;
    const stored: Record<string, MessageAttribute> = { ...parsed.attributes };
    if (trace !== undefined) stored[TRACE_HEADER_KEY] = { DataType: 'String', StringValue: trace };
    return {
      messageId: uuidv7(this.clock.now()),
      body,
      bodyBytes,
      attributes: stored,
      md5OfMessageSystemAttributes: trace === undefined ? null : md5OfMessageAttributes({ AWSTraceHeader: { DataType: 'String', StringValue: trace } }),
      ...(groupId !== undefined ? { groupId } : {}),
      ...(dedupId !== undefined ? { dedupId } : {}),
      size,
      delaySeconds,
      md5OfBody: md5OfBody(body),
      md5OfMessageAttributes: hasAttributes ? md5OfMessageAttributes(parsed.attributes) : null,
    };
  }

  /**
   * One DEK for the batch, one atomic write, then wake the queue's long polls. The send is reported
   * to the bus once the key has been looked up, with what the node's cache did.
   */
  private async seal(queue: QueueRecord, ctx: Call, messages: Prepared[], bytes: number): Promise<void> {
    const principal = ctx.principal;
    const before = this.keyCounts();
    const sealing = this.keyring.sealMessages(queue.queueId, principal, messages.map((m) => ({
      messageId: m.messageId,
      body: Buffer.from(m.body, 'utf8'),
      attributes: encodeAttributes(m.attributes),
    })));
    // The keyring looks the key up synchronously within that call: read the outcome before any
    // other request can use the cache.
    this.report(queue.queueId, ctx, 'send', bytes, this.keyOutcome(before, queue.queueId, principal));
    const sealed = await sealing;
    const now = this.clock.now();
    const stored: NewMessage[] = messages.map((m, i) => {
      const s = sealed[i]!;
      return {
        messageId: m.messageId,
        queueId: queue.queueId,
        bodyCiphertext: s.bodyCiphertext,
        attributesCiphertext: s.attributesCiphertext,
        encryptedDek: s.encryptedDek,
        dekId: s.dekId,
        kmsKeyId: s.kmsKeyId,
        senderPrincipal: principal,
        sentAt: now,
        visibleAt: now + m.delaySeconds * 1000,
        bodyBytes: m.bodyBytes,
        ...(m.groupId !== undefined ? { groupId: m.groupId } : {}),
        ...(m.dedupId !== undefined ? { dedupId: m.dedupId } : {}),
      };
    });
    if (isFifoQueue(queue)) {
      const scope = effectiveAttributes(queue.attributes).DeduplicationScope === 'messageGroup' ? 'messageGroup' : 'queue';
      const results = await this.store.putFifoMessages(queue.queueId, stored, { scope, windowMs: DEDUP_WINDOW_MS }, now);
      // A duplicate answers with the message sent first, as SQS does.
      results.forEach((r, i) => {
        messages[i]!.messageId = r.messageId;
        messages[i]!.sequenceNumber = r.sequenceNumber;
      });
    } else {
      await this.store.putMessages(stored);
    }
    this.waiters.notify(queue.queueId);
    // After the write, so the backlog reported counts these messages.
    this.reportQueueStats(queue.queueId, this.clock.now());
  }

  // ---- receiving ----

  private async receiveMessage(p: Params, ctx: Call): Promise<Result> {
    let queue = await this.queueOf(p, ctx);
    const max = optionalInt(p, 'MaxNumberOfMessages', 1, 10) ?? 1;
    const visibilityTimeout = optionalInt(p, 'VisibilityTimeout', 0, MAX_VISIBILITY_TIMEOUT) ?? intAttribute(queue, 'VisibilityTimeout');
    const waitSeconds = optionalInt(p, 'WaitTimeSeconds', 0, 20) ?? intAttribute(queue, 'ReceiveMessageWaitTimeSeconds');
    const system = requestedSystemAttributes(p);
    const wantAttribute = attributeSelector(p.MessageAttributeNames);
    const attemptId = fifoId(p, 'ReceiveRequestAttemptId'); // FIFO only; ignored on standard queues, as in SQS
    this.report(queue.queueId, ctx, 'receive');

    const deadline = this.clock.now() + waitSeconds * 1000;
    let received: ReceivedMessage[] = [];
    let retriedEarly = false;
    for (;;) {
      const seen = this.waiters.version(queue.queueId);
      await this.sweepExpired(queue);
      const now = this.clock.now();
      const dlq = await this.deadLetterQueueOf(queue);
      received = await this.store.receiveMessages(queue.queueId, max, visibilityTimeout * 1000, now, {
        redrive: dlq && { maxReceiveCount: dlq.maxReceiveCount, leaseMs: MOVE_LEASE_MS },
        fifo: isFifoQueue(queue),
        expiredBefore: now - intAttribute(queue, 'MessageRetentionPeriod') * 1000,
        ...(attemptId !== undefined && isFifoQueue(queue) ? { attempt: { id: attemptId, windowMs: DEDUP_WINDOW_MS } } : {}),
      });
      const dead = received.filter((m) => m.redrive);
      if (dead.length > 0) {
        received = received.filter((m) => !m.redrive);
        await this.moveToDeadLetterQueue(queue, dlq!.queue, dead);
        if (received.length === 0) continue; // others may be waiting behind the moved ones
      }
      if (received.length > 0 || now >= deadline || this.waiters.closed) break;
      // Wake for new messages (notify), for delayed or in-flight ones coming due, or at the deadline.
      const nextVisible = await this.store.nextVisibleAt(queue.queueId);
      let until = deadline;
      if (nextVisible !== undefined && nextVisible < deadline) {
        if (nextVisible > now) until = nextVisible;
        else if (!retriedEarly) {
          retriedEarly = true;
          continue;
        }
      }
      retriedEarly = false;
      this.longPolls++;
      let parked: boolean;
      try {
        parked = await this.waiters.wait(queue.queueId, until, seen);
      } finally {
        this.longPolls--;
      }
      if (!parked) break; // too many long polls parked (or closing): answer empty now, the client polls again
      const current = await this.store.getQueueById(queue.queueId);
      if (!current) break; // deleted while we waited: an empty answer
      queue = current;
    }
    if (received.length === 0) return { Messages: [] };

    const opened = await this.open(queue.queueId, received);
    const now = this.clock.now();
    return { Messages: opened.map((m) => messageOutput(m, system, wantAttribute, now)) };
  }

  /** The queue's dead-letter queue and limit, while both it and its target exist. */
  private async deadLetterQueueOf(queue: QueueRecord): Promise<{ queue: QueueRecord; maxReceiveCount: number } | undefined> {
    const policy = redrivePolicyOf(queue.attributes);
    const target = policy && parseQueueArn(policy.deadLetterTargetArn);
    if (!policy || !target || target.accountId !== queue.accountId) return undefined;
    const dlq = await this.store.getQueueByName(target.name, target.accountId);
    return dlq && dlq.queueId !== queue.queueId ? { queue: dlq, maxReceiveCount: policy.maxReceiveCount } : undefined;
  }

  /**
   * Moves leased messages to the dead-letter queue: opened under the source queue's key, sealed
   * under the destination's (same sender principal, same message id), and swapped in one store
   * transaction. Plaintext is zeroed once sealed. A failure leaves them leased: they come back after
   * the lease and are moved on a later receive.
   */
  private async moveToDeadLetterQueue(source: QueueRecord, dlq: QueueRecord, leased: ReceivedMessage[]): Promise<void> {
    try {
      await this.reseal(source, dlq, leased, queueArn(this.region, source.accountId, source.name));
    } catch (error) {
      this.logger.warn({ queueId: source.queueId, dlq: dlq.queueId, error: describeError(error) }, 'dead-letter move failed; retried after the lease');
    }
  }

  /**
   * Moves leased messages of `source` to `dest`: opened under the source's key, sealed under the
   * destination's (same sender, same message id), swapped in one store transaction. Plaintext is
   * zeroed once sealed. `deadLetterSourceArn` marks them as dead-lettered from there (or clears it).
   * Resolves with how many moved; throws if a key operation fails (the rest stay leased).
   */
  private async reseal(source: QueueRecord, dest: QueueRecord, leased: ReceivedMessage[], deadLetterSourceArn?: string): Promise<number> {
    let moved = 0;
    const bySender = new Map<string, ReceivedMessage[]>();
    for (const m of leased) bySender.set(m.senderPrincipal, [...(bySender.get(m.senderPrincipal) ?? []), m]);
    for (const [sender, messages] of bySender) {
      const opened: { body: Buffer; attributes: Buffer | null }[] = [];
      try {
        for (const m of messages) opened.push(await this.keyring.openMessage(m));
        const sealed = await this.keyring.sealMessages(dest.queueId, sender, messages.map((m, i) => ({
          messageId: m.messageId, body: opened[i]!.body, attributes: opened[i]!.attributes,
        })));
        const now = this.clock.now();
        moved += await this.store.moveMessages(source.queueId, messages.map((m, i) => {
          const s = sealed[i]!;
          return {
            receiptHandle: m.receiptHandle,
            message: {
              messageId: m.messageId, queueId: dest.queueId, bodyCiphertext: s.bodyCiphertext, attributesCiphertext: s.attributesCiphertext,
              encryptedDek: s.encryptedDek, dekId: s.dekId, kmsKeyId: s.kmsKeyId, senderPrincipal: sender, sentAt: m.sentAt, visibleAt: now, bodyBytes: m.bodyBytes,
              ...(m.groupId !== undefined ? { groupId: m.groupId } : {}),
              ...(m.dedupId !== undefined ? { dedupId: m.dedupId } : {}),
              ...(m.sequenceNumber !== undefined ? { sequenceNumber: m.sequenceNumber } : {}),
              ...(deadLetterSourceArn !== undefined ? { deadLetterSourceArn } : {}),
            },
          };
        }));
        this.waiters.notify(dest.queueId);
      } finally {
        for (const o of opened) {
          o.body.fill(0);
          o.attributes?.fill(0);
        }
      }
    }
    return moved;
  }

  // ---- message move tasks ----

  /** The queue an ARN names, if the caller may use it for this request's action. */
  private async queueOfArn(arn: string, ctx: Call, name: string): Promise<QueueRecord> {
    const parts = parseQueueArn(arn);
    if (!parts || parts.region !== this.region) throw invalidParameter(`Value ${arn.slice(0, 256)} for parameter ${name} is invalid. Reason: not a queue ARN of this region.`);
    return this.authorized(await this.store.getQueueByName(parts.name, parts.accountId), ctx);
  }

  private async startMessageMoveTask(p: Params, ctx: Call): Promise<Result> {
    const sourceArn = requiredString(p, 'SourceArn');
    const source = await this.queueOfArn(sourceArn, ctx, 'SourceArn');
    const isDlq = (await this.store.listQueues(undefined, source.accountId)).some((q) => redrivePolicyOf(q.attributes)?.deadLetterTargetArn === sourceArn);
    if (!isDlq) throw invalidParameter('Source queue must be configured as a Dead Letter Queue.');
    const destinationArn = optionalString(p, 'DestinationArn', 1024);
    if (destinationArn !== undefined) {
      const dest = await this.queueOfArn(destinationArn, { ...ctx, iamAction: 'SendMessage' }, 'DestinationArn');
      if (dest.queueId === source.queueId) throw invalidParameter('The destination must differ from the source.');
    }
    const rate = optionalInt(p, 'MaxNumberOfMessagesPerSecond', 1, 500);
    if ((await this.store.listMoveTasks(sourceArn, 1)).some((t) => t.status === 'RUNNING' || t.status === 'CANCELLING')) {
      throw new SqsError('UnsupportedOperation', 'There is already a task running. Only one active task is allowed for a source queue arn at a given time.');
    }
    const now = this.clock.now();
    const task: MoveTaskRecord = {
      taskHandle: Buffer.from(JSON.stringify({ taskId: uuidv7(now), sourceArn }), 'utf8').toString('base64url'),
      status: 'RUNNING',
      sourceArn,
      ...(destinationArn !== undefined ? { destinationArn } : {}),
      ...(rate !== undefined ? { maxNumberOfMessagesPerSecond: rate } : {}),
      approximateNumberOfMessagesMoved: 0,
      approximateNumberOfMessagesToMove: (await this.store.counts(source.queueId, now)).visible,
      startedAt: now,
    };
    await this.store.saveMoveTask(task);
    this.report(source.queueId, ctx, 'other');
    this.clock.setTimer(0, () => void this.moveTaskStep(task.taskHandle, source.queueId));
    return { TaskHandle: task.taskHandle };
  }

  /** One step of a move task: up to 10 messages, then the next step paced by the task's rate. */
  private async moveTaskStep(taskHandle: string, sourceQueueId: string): Promise<void> {
    let task: MoveTaskRecord | undefined;
    try {
      task = await this.store.getMoveTask(taskHandle);
    } catch {
      return; // the store is closed: the task is failed when it reopens
    }
    if (!task || task.status !== 'RUNNING') {
      if (task?.status === 'CANCELLING') await this.store.saveMoveTask({ ...task, status: 'CANCELLED' });
      return;
    }
    const current = task;
    const step = (): void => void this.moveTaskStep(taskHandle, sourceQueueId);
    // Saved only while still RUNNING: a cancel that came in meanwhile stands, and the next step ends the task.
    const finish = async (status: MoveTaskRecord['status'], failureReason?: string): Promise<void> => {
      if (!(await this.store.saveMoveTask({ ...current, status, ...(failureReason !== undefined ? { failureReason } : {}) }, 'RUNNING'))) this.clock.setTimer(0, step);
    };
    try {
      const source = await this.store.getQueueById(sourceQueueId);
      if (!source) return await finish('FAILED', 'The source queue was deleted.');
      // At most a second's worth at the task's rate per step, and 10.
      const want = Math.min(10, task.maxNumberOfMessagesPerSecond ?? 10, task.approximateNumberOfMessagesToMove - task.approximateNumberOfMessagesMoved);
      const leased = want > 0 ? await this.store.receiveMessages(sourceQueueId, want, 0, this.clock.now(), { redrive: { maxReceiveCount: 0, leaseMs: MOVE_LEASE_MS } }) : [];
      if (leased.length === 0) return await finish('COMPLETED');
      const byDest = new Map<string, ReceivedMessage[]>();
      for (const m of leased) {
        const dest = task.destinationArn ?? m.deadLetterSourceArn;
        if (dest === undefined) return await finish('FAILED', 'A message has no source queue to return to: give a DestinationArn.');
        byDest.set(dest, [...(byDest.get(dest) ?? []), m]);
      }
      let moved = 0;
      for (const [arn, messages] of byDest) {
        const parts = parseQueueArn(arn);
        const dest = parts && (await this.store.getQueueByName(parts.name, parts.accountId));
        if (!dest) return await finish('FAILED', `The destination queue ${arn} does not exist.`);
        moved += await this.reseal(source, dest, messages);
      }
      const next: MoveTaskRecord = { ...task, approximateNumberOfMessagesMoved: task.approximateNumberOfMessagesMoved + moved };
      if (!(await this.store.saveMoveTask(next, 'RUNNING'))) return await this.endCancelled(taskHandle, moved);
      const pause = task.maxNumberOfMessagesPerSecond ? Math.ceil((leased.length * 1000) / task.maxNumberOfMessagesPerSecond) : 0;
      this.clock.setTimer(pause, step);
    } catch (error) {
      this.logger.warn({ queueId: sourceQueueId, error: describeError(error) }, 'message move task failed');
      try {
        await finish('FAILED', 'The messages could not be moved.');
      } catch {
        // the store is closed: the task is failed when it reopens
      }
    }
  }

  /** A cancel came in while a step moved `moved` messages: the task ends CANCELLED, counting them. */
  private async endCancelled(taskHandle: string, moved: number): Promise<void> {
    const task = await this.store.getMoveTask(taskHandle);
    if (task?.status !== 'CANCELLING') return;
    await this.store.saveMoveTask({ ...task, status: 'CANCELLED', approximateNumberOfMessagesMoved: task.approximateNumberOfMessagesMoved + moved }, 'CANCELLING');
  }

  private async cancelMessageMoveTask(p: Params, ctx: Call): Promise<Result> {
    const handle = requiredString(p, 'TaskHandle');
    const task = await this.store.getMoveTask(handle);
    if (!task) throw new SqsError('ResourceNotFoundException', 'The task handle does not name a message move task.', 404);
    await this.queueOfArn(task.sourceArn, ctx, 'SourceArn');
    if (task.status !== 'RUNNING') throw new SqsError('ResourceNotFoundException', `The task is ${task.status}, not RUNNING.`, 404);
    if (!(await this.store.saveMoveTask({ ...task, status: 'CANCELLING' }, 'RUNNING'))) {
      throw new SqsError('ResourceNotFoundException', 'The task is no longer RUNNING.', 404);
    }
    return { ApproximateNumberOfMessagesMoved: task.approximateNumberOfMessagesMoved };
  }

  private async listMessageMoveTasks(p: Params, ctx: Call): Promise<Result> {
    const sourceArn = requiredString(p, 'SourceArn');
    await this.queueOfArn(sourceArn, ctx, 'SourceArn');
    const max = optionalInt(p, 'MaxResults', 1, 10) ?? 1;
    return {
      Results: (await this.store.listMoveTasks(sourceArn, max)).map((t) => ({
        ...(t.status === 'RUNNING' ? { TaskHandle: t.taskHandle } : {}),
        Status: t.status,
        SourceArn: t.sourceArn,
        ...(t.destinationArn !== undefined ? { DestinationArn: t.destinationArn } : {}),
        ...(t.maxNumberOfMessagesPerSecond !== undefined ? { MaxNumberOfMessagesPerSecond: t.maxNumberOfMessagesPerSecond } : {}),
        ApproximateNumberOfMessagesMoved: t.approximateNumberOfMessagesMoved,
        ApproximateNumberOfMessagesToMove: t.approximateNumberOfMessagesToMove,
        ...(t.failureReason !== undefined ? { FailureReason: t.failureReason } : {}),
        StartedTimestamp: t.startedAt,
      })),
    };
  }

  /** A RedrivePolicy must name an existing queue of the same account that allows this source. */
  private async checkRedriveTarget(attributes: Readonly<Record<string, string>>, accountId: string, name: string): Promise<void> {
    if (!attributes.RedrivePolicy) return;
    const policy = redrivePolicyOf(attributes)!;
    const target = parseQueueArn(policy.deadLetterTargetArn);
    const dlq = target && target.accountId === accountId && target.region === this.region ? await this.store.getQueueByName(target.name, accountId) : undefined;
    const reason = !dlq ? 'Dead letter target does not exist.'
      : dlq.name === name ? 'A queue cannot be its own dead-letter queue.'
        : isFifoQueue(dlq) !== isFifoName(name) ? 'The dead-letter queue of a FIFO queue must be a FIFO queue, and of a standard queue a standard queue.'
        : !allowsSource(dlq.attributes, queueArn(this.region, accountId, name)) ? "The dead-letter queue's RedriveAllowPolicy does not allow this queue."
          : undefined;
    if (reason !== undefined) throw invalidParameter(`Value ${attributes.RedrivePolicy} for parameter RedrivePolicy is invalid. Reason: ${reason}`);
  }

  private async listDeadLetterSourceQueues(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const maxResults = optionalInt(p, 'MaxResults', 1, 1000);
    const after = decodeNextToken(optionalString(p, 'NextToken', 1024));
    const arn = queueArn(this.region, queue.accountId, queue.name);
    const names = (await this.store.listQueues(undefined, queue.accountId))
      .filter((q) => redrivePolicyOf(q.attributes)?.deadLetterTargetArn === arn)
      .map((q) => q.name)
      .filter((n) => after === undefined || n > after)
      .sort();
    this.report(queue.queueId, ctx, 'other');
    const page = names.slice(0, maxResults ?? 1000);
    const result: Result = { queueUrls: page.map((n) => queueUrl(ctx.baseUrl, queue.accountId, n)) };
    if (maxResults !== undefined && names.length > page.length) result.NextToken = encodeNextToken(page[page.length - 1]!);
    return result;
  }

  /** Decrypts what was received. If any fails, all are made visible again before the error goes out. */
  private async open(queueId: string, received: ReceivedMessage[]): Promise<OpenedMessage[]> {
    try {
      return await Promise.all(received.map(async (stored) => ({ stored, ...(await this.keyring.openMessage(stored)) })));
    } catch (error) {
      const now = this.clock.now();
      await Promise.allSettled(received.map((m) => this.store.changeVisibility(queueId, m.receiptHandle, now, now)));
      this.waiters.notify(queueId);
      throw error;
    }
  }

  private async sweepExpired(queue: QueueRecord): Promise<void> {
    const now = this.clock.now();
    const last = this.lastSweep.get(queue.queueId);
    if (last !== undefined && now - last < RETENTION_SWEEP_MS) return;
    this.lastSweep.set(queue.queueId, now);
    await this.store.dropExpired(queue.queueId, intAttribute(queue, 'MessageRetentionPeriod') * 1000, now);
  }

  // ---- after receiving ----

  private async deleteMessage(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const handle = requiredString(p, 'ReceiptHandle');
    this.report(queue.queueId, ctx, 'delete');
    await this.deleteOne(queue.queueId, handle);
    return {};
  }

  private async deleteMessageBatch(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const entries = batchEntries(p, 'DeleteMessageBatchRequestEntry');
    this.report(queue.queueId, ctx, 'delete');
    return this.perEntry(entries, (e) => this.deleteOne(queue.queueId, requiredString(e.params, 'ReceiptHandle')));
  }

  private async deleteOne(queueId: string, handle: string): Promise<void> {
    const outcome = await this.store.deleteMessage(queueId, handle);
    if (outcome === 'invalid') throw receiptHandleInvalid(handle);
  }

  private async changeMessageVisibility(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const handle = requiredString(p, 'ReceiptHandle');
    const seconds = requiredInt(p, 'VisibilityTimeout', 0, MAX_VISIBILITY_TIMEOUT);
    this.report(queue.queueId, ctx, 'other');
    await this.changeOne(queue.queueId, handle, seconds);
    return {};
  }

  private async changeMessageVisibilityBatch(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const entries = batchEntries(p, 'ChangeMessageVisibilityBatchRequestEntry');
    this.report(queue.queueId, ctx, 'other');
    return this.perEntry(entries, (e) => this.changeOne(
      queue.queueId,
      requiredString(e.params, 'ReceiptHandle'),
      requiredInt(e.params, 'VisibilityTimeout', 0, MAX_VISIBILITY_TIMEOUT),
    ));
  }

  private async changeOne(queueId: string, handle: string, seconds: number): Promise<void> {
    const now = this.clock.now();
    const outcome = await this.store.changeVisibility(queueId, handle, now + seconds * 1000, now);
    if (outcome === 'invalid') throw receiptHandleInvalid(handle);
    // As SQS: a handle whose visibility ran out (message not received since) is accepted and changes
    // nothing; one of a deleted or re-received message is an invalid ReceiptHandle value.
    if (outcome === 'not-in-flight') {
      throw invalidParameter(`Value ${handle.slice(0, 128)} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.`);
    }
    if (seconds === 0) this.waiters.notify(queueId);
  }

  /**
   * Starts `fn` for each entry in order, all at once, so that the store commits their writes
   * together; SQS errors become Failed entries (in entry order), anything else fails the request.
   */
  private async perEntry(entries: BatchEntry[], fn: (entry: BatchEntry) => Promise<void>): Promise<Result> {
    const outcomes = await Promise.all(entries.map(async (entry) => {
      try {
        await fn(entry);
        return undefined;
      } catch (error) {
        return failedEntry(entry, error);
      }
    }));
    const successful: { Id: string }[] = [];
    const failed: FailedEntry[] = [];
    outcomes.forEach((failure, i) => (failure ? failed.push(failure) : successful.push({ Id: entries[i]!.id })));
    return { Successful: successful, Failed: failed };
  }

  // ---- shared ----

  /** The queue the request names, if the caller may use it for this action. */
  private async queueOf(p: Params, ctx: Call): Promise<QueueRecord> {
    const ref = queueRefFromUrl(p.QueueUrl);
    return this.authorized(await this.store.getQueueByName(ref.name, ref.accountId ?? ctx.accountId), ctx);
  }

  /**
   * The owner's account may do anything its queue's Policy does not explicitly deny; another
   * account only what the Policy allows it. To another account a queue it may not use does not
   * exist; the owner is told AccessDenied.
   */
  private authorized(queue: QueueRecord | undefined, ctx: Call): QueueRecord {
    if (!queue) throw queueDoesNotExist();
    const decision = evaluatePolicy(queue.attributes.Policy, {
      action: ctx.iamAction,
      accountId: ctx.accountId,
      principalArn: ctx.principalArn,
      resourceArn: queueArn(this.region, queue.accountId, queue.name),
    });
    const owner = queue.accountId === ctx.accountId;
    if (decision === 'allow' || (owner && decision === 'none')) return queue;
    if (owner) throw new SqsError('AccessDenied', `Access to the resource ${queueArn(this.region, queue.accountId, queue.name)} is denied.`, 403);
    throw queueDoesNotExist();
  }

  // ---- permissions ----

  private async addPermission(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const label = permissionLabel(p);
    const accounts = optionalStringList(p, 'AWSAccountIds') ?? [];
    const actions = optionalStringList(p, 'Actions') ?? [];
    if (accounts.length === 0) throw missingParameter('AWSAccountIds');
    if (actions.length === 0) throw missingParameter('Actions');
    for (const a of accounts) if (!isAccountId(a)) throw invalidParameter(`Value ${a.slice(0, 64)} for parameter AWSAccountIds is invalid. Reason: not a 12-digit account id.`);
    for (const a of actions) if (!GRANTABLE.has(a)) throw invalidParameter(`Value ${a.slice(0, 64)} for parameter ActionName is invalid. Reason: Only the queue owner is allowed to invoke this action.`);
    const doc = policyDocument(queue.attributes.Policy, queueArn(this.region, queue.accountId, queue.name));
    if (doc.Statement.some((s) => s.Sid === label)) throw invalidParameter(`Value ${label} for parameter Label is invalid. Reason: Already exists.`);
    doc.Statement.push({
      Sid: label,
      Effect: 'Allow',
      Principal: { AWS: accounts.map((a) => `arn:aws:iam::${a}:root`) },
      Action: actions.map((a) => `SQS:${a}`),
      Resource: queueArn(this.region, queue.accountId, queue.name),
    });
    this.report(queue.queueId, ctx, 'other');
    if (!(await this.store.setQueueAttributes(queue.queueId, { Policy: JSON.stringify(doc) }, this.clock.now()))) throw queueDoesNotExist();
    return {};
  }

  private async removePermission(p: Params, ctx: Call): Promise<Result> {
    const queue = await this.queueOf(p, ctx);
    const label = permissionLabel(p);
    const doc = policyDocument(queue.attributes.Policy, queueArn(this.region, queue.accountId, queue.name));
    const kept = doc.Statement.filter((s) => s.Sid !== label);
    if (kept.length === doc.Statement.length) throw invalidParameter(`Value ${label} for parameter Label is invalid. Reason: can't find label.`);
    this.report(queue.queueId, ctx, 'other');
    const policy = kept.length === 0 ? '' : JSON.stringify({ ...doc, Statement: kept });
    if (!(await this.store.setQueueAttributes(queue.queueId, { Policy: policy }, this.clock.now()))) throw queueDoesNotExist();
    return {};
  }

  /**
   * One access event per queue-level request, and now and then the queue's stats after a receive
   * or delete (sends report theirs once stored). Never fails the request (prefetching fails open).
   */
  private report(queueId: string, ctx: RequestContext, op: QueueOp, bytes = 0, key?: KeyOutcome): void {
    const at = this.clock.now();
    try {
      this.bus.publish({ type: 'access', at, queueId, nodeId: this.nodeId, principal: ctx.principal, op, bytes, ...key });
    } catch (error) {
      this.logger.warn({ queueId, op, error: describeError(error) }, 'access event not published');
    }
    if (op === 'receive' || op === 'delete') this.reportQueueStats(queueId, at);
  }

  /** The queue's backlog, when the schedule says it is due. */
  private reportQueueStats(queueId: string, at: number): void {
    if (!this.queueStats?.due(queueId, at)) return;
    // Not awaited: the request does not wait for its stats.
    // Counted up to a bound: a full count of a deep queue held the event loop (12-15 ms at 300,000
    // messages), and the prefetcher needs to know that there is a backlog, not its exact depth.
    this.store.backlog(queueId, BACKLOG_COUNTED_UP_TO)
      .then((backlog) => this.bus.publish({ type: 'queue-stats', at, queueId, nodeId: this.nodeId, backlog }))
      .catch((error: unknown) => this.logger.debug({ queueId, error: describeError(error) }, 'queue stats not published'));
  }

  private keyCounts(): { hits: number; misses: number } | undefined {
    const stats = this.keyCache?.stats;
    return stats ? { hits: stats.hits, misses: stats.misses } : undefined;
  }

  /** What the key lookup just made did: a hit (with the key's expiry), a miss, or unknown. */
  private keyOutcome(before: { hits: number; misses: number } | undefined, queueId: string, principal: string): KeyOutcome | undefined {
    const cache = this.keyCache;
    if (!cache || !before) return undefined;
    try {
      const hits = cache.stats.hits - before.hits;
      const misses = cache.stats.misses - before.misses;
      if (hits === 1 && misses === 0) {
        const outcome: KeyOutcome = { keyHit: true, prefetchedFirstUse: cache.lastHitWasPrefetchedFirstUse === true };
        const expiresAt = cache.peekEncrypt(queueId, principal)?.key.expiresAt;
        if (expiresAt !== undefined) outcome.keyExpiresAt = expiresAt;
        return outcome;
      }
      if (hits === 0 && misses === 1) return { keyHit: false };
    } catch {
      // unknown: the event goes out without it
    }
    return undefined;
  }

  /** Maps internal failures to SQS errors. Unknown ones are logged (names and codes only) as InternalFailure. */
  private toSqsError(error: unknown, action: string): SqsError {
    if (error instanceof SqsError) return error;
    if (error instanceof KmsError) {
      switch (error.code) {
        case 'DisabledException': return new SqsError('KmsDisabled', 'The KMS key of this queue is disabled.');
        case 'NotFoundException': return new SqsError('KmsNotFound', 'The KMS key of this queue was not found.');
        case 'ThrottlingException': return new SqsError('KmsThrottled', 'The request was denied due to KMS request throttling.');
        case 'AccessDeniedException': return new SqsError('KmsAccessDenied', 'The KMS refused the request for this queue\'s key.');
        // Keys already cached keep serving; only requests that need a new one get this, and may retry.
        case 'KmsUnreachable':
        case 'KMSInternalException':
          return new SqsError('KmsUnavailable', 'The KMS is unavailable, so this queue\'s data key cannot be obtained now. Try again.', 503, false);
        default: break;
      }
    }
    if (error instanceof DeadlineError) return serviceUnavailable('Timed out waiting for the queue\'s data key. Try again.');
    if (error instanceof PkpError) {
      if (error.code === 'QueueDoesNotExist') return queueDoesNotExist();
      if (error.code === 'KeyUnavailable' || error.code === 'ServiceClosed') return serviceUnavailable();
      if (error.code === 'StoreFull') return serviceUnavailable('The service cannot store new messages now: its disk is full. Stored messages can still be received and deleted.');
      if (error.code === 'StoreUnavailable') return serviceUnavailable('The message store cannot be reached now. Try again.');
    }
    this.logger.error({ action, node: this.nodeId, error: describeError(error) }, 'request failed');
    return internalFailure();
  }
}

/** MessageGroupId / MessageDeduplicationId: 1..128 of letters, digits and punctuation. */
function fifoId(p: Params, name: string): string | undefined {
  const value = optionalString(p, name, 128);
  if (value === undefined) return undefined;
  if (!/^[\x21-\x7e]{1,128}$/.test(value)) {
    throw invalidParameter(`Value ${value.slice(0, 128)} for parameter ${name} is invalid. Reason: it must be 1 to 128 alphanumeric or punctuation characters.`);
  }
  return value;
}

/** A tag map: at most 50, keys 1..128 and values 0..256 characters, no `aws:` keys. */
function parseTags(input: unknown): Record<string, string> {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw invalidParameter('Tags must be a map of keys to values.');
  const out = Object.create(null) as Record<string, string>;
  const entries = Object.entries(input as Record<string, unknown>);
  if (entries.length > MAX_TAGS) throw invalidParameter(`Too many tags: a queue can have at most ${MAX_TAGS}.`);
  for (const [key, value] of entries) {
    if (key.length < 1 || key.length > 128) throw invalidParameter('Tag keys must be 1 to 128 characters long.');
    if (/^aws:/i.test(key)) throw invalidParameter("Tag keys must not start with 'aws:'.");
    if (typeof value !== 'string' || value.length > 256) throw invalidParameter('Tag values must be strings of at most 256 characters.');
    out[key] = value;
  }
  return out;
}

/** High-throughput FIFO: per-group throughput needs deduplication within the group. */
function checkFifoAttributes(attributes: Readonly<Record<string, string>>): void {
  const effective = effectiveAttributes(attributes);
  if (effective.FifoThroughputLimit === 'perMessageGroupId' && effective.DeduplicationScope !== 'messageGroup') {
    throw new SqsError('InvalidAttributeValue', 'Invalid value for the parameter FifoThroughputLimit. Reason: perMessageGroupId requires DeduplicationScope messageGroup.');
  }
}

function permissionLabel(p: Params): string {
  const label = requiredString(p, 'Label');
  if (!/^[A-Za-z0-9_-]{1,80}$/.test(label)) {
    throw invalidParameter('Value for parameter Label is invalid. Reason: Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length.');
  }
  return label;
}

/** The queue's policy as an editable document (a new one when it has none). */
function policyDocument(text: string | undefined, arn: string): { Version: string; Id?: string; Statement: Record<string, unknown>[] } & Record<string, unknown> {
  if (text) {
    const doc = JSON.parse(text) as Record<string, unknown>;
    const statements = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement === undefined ? [] : [doc.Statement];
    return { ...doc, Version: typeof doc.Version === 'string' ? doc.Version : '2012-10-17', Statement: statements as Record<string, unknown>[] };
  }
  return { Version: '2012-10-17', Id: `${arn}/SQSDefaultPolicy`, Statement: [] };
}

function sentOutput(m: Prepared): Result {
  const out: Result = { MessageId: m.messageId, MD5OfMessageBody: m.md5OfBody };
  if (m.md5OfMessageAttributes !== null) out.MD5OfMessageAttributes = m.md5OfMessageAttributes;
  if (m.md5OfMessageSystemAttributes !== null) out.MD5OfMessageSystemAttributes = m.md5OfMessageSystemAttributes;
  if (m.sequenceNumber !== undefined) out.SequenceNumber = m.sequenceNumber;
  return out;
}

function failedEntry(entry: BatchEntry, error: unknown): FailedEntry {
  if (!(error instanceof SqsError)) throw error;
  return { Id: entry.id, SenderFault: error.senderFault, Code: queryCodeOf(error.code), Message: error.message };
}

function receiptHandleInvalid(handle: string): SqsError {
  const shown = handle.length > 128 ? `${handle.slice(0, 128)}...` : handle;
  return new SqsError('ReceiptHandleIsInvalid', `The input receipt handle "${shown}" is not a valid receipt handle.`, 404);
}

function encodeNextToken(lastName: string): string {
  return Buffer.from(JSON.stringify({ after: lastName }), 'utf8').toString('base64url');
}

function decodeNextToken(token: string | undefined): string | undefined {
  if (token === undefined || token === '') return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { after?: unknown };
    if (typeof parsed.after === 'string' && isValidQueueName(parsed.after)) return parsed.after;
  } catch {
    // falls through to the error below
  }
  throw invalidParameter('Invalid NextToken value.');
}
