import { SqsError } from '../core/errors.ts';

/**
 * How an SqsError goes on the wire (AWS JSON 1.0 with query compatibility). The body's `__type`
 * names the error shape of the SQS model; the `x-amzn-query-error` header carries the legacy query
 * code. The JavaScript SDK reads the header first and looks the shape up by it (directly, or
 * through the shape's awsQueryError trait), so for modelled errors the header must carry exactly
 * the model's query code, else the SDK cannot name the error. Codes absent from this table are
 * the same in both places (e.g. InvalidAttributeName, MissingParameter, SignatureDoesNotMatch).
 */
const QUERY_CODES: Readonly<Record<string, string>> = {
  QueueDoesNotExist: 'AWS.SimpleQueueService.NonExistentQueue',
  QueueNameExists: 'QueueAlreadyExists',
  QueueDeletedRecently: 'AWS.SimpleQueueService.QueueDeletedRecently',
  BatchEntryIdsNotDistinct: 'AWS.SimpleQueueService.BatchEntryIdsNotDistinct',
  BatchRequestTooLong: 'AWS.SimpleQueueService.BatchRequestTooLong',
  EmptyBatchRequest: 'AWS.SimpleQueueService.EmptyBatchRequest',
  TooManyEntriesInBatchRequest: 'AWS.SimpleQueueService.TooManyEntriesInBatchRequest',
  InvalidBatchEntryId: 'AWS.SimpleQueueService.InvalidBatchEntryId',
  MessageNotInflight: 'AWS.SimpleQueueService.MessageNotInflight',
  PurgeQueueInProgress: 'AWS.SimpleQueueService.PurgeQueueInProgress',
  UnsupportedOperation: 'AWS.SimpleQueueService.UnsupportedOperation',
  KmsDisabled: 'KMS.DisabledException',
  KmsNotFound: 'KMS.NotFoundException',
  KmsThrottled: 'KMS.ThrottlingException',
  KmsAccessDenied: 'KMS.AccessDeniedException',
  KmsInvalidState: 'KMS.InvalidStateException',
  KmsInvalidKeyUsage: 'KMS.InvalidKeyUsageException',
};

/** The legacy query code for an error shape name (the SDK's Error.Code). */
export function queryCodeOf(code: string): string {
  return QUERY_CODES[code] ?? code;
}

export interface WireError {
  status: number;
  headers: Record<string, string>;
  body: { __type: string; message: string };
}

export function toWire(error: SqsError): WireError {
  return {
    status: error.status,
    headers: { 'x-amzn-query-error': `${queryCodeOf(error.code)};${error.senderFault ? 'Sender' : 'Receiver'}` },
    body: { __type: `com.amazonaws.sqs#${error.code}`, message: error.message },
  };
}

// Constructors for the errors raised in many places, so their wording stays the same everywhere.

export const missingParameter = (name: string): SqsError =>
  new SqsError('MissingParameter', `The request must contain the parameter ${name}.`);

export const invalidParameter = (message: string): SqsError => new SqsError('InvalidParameterValue', message);

export const queueDoesNotExist = (): SqsError =>
  new SqsError('QueueDoesNotExist', 'The specified queue does not exist.');

export const internalFailure = (): SqsError =>
  new SqsError('InternalFailure', 'The request processing has failed because of an unknown error, exception or failure.', 500, false);

export const serviceUnavailable = (message = 'The request has failed due to a temporary failure of the server.'): SqsError =>
  new SqsError('ServiceUnavailable', message, 503, false);
