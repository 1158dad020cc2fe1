/** Typed errors. Each carries a stable code; SqsError also carries the wire status. */

export class PkpError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'PkpError';
  }
}

/** An error that the SQS endpoint returns as-is: code, message and HTTP status. */
export class SqsError extends PkpError {
  constructor(code: string, message: string, readonly status = 400, readonly senderFault = true) {
    super(code, message);
    this.name = 'SqsError';
  }
}

/** Errors from a KMS, named as AWS KMS names them. */
export type KmsErrorCode =
  | 'NotFoundException'
  | 'DisabledException'
  | 'InvalidCiphertextException'
  | 'ThrottlingException'
  | 'AlreadyExistsException'
  | 'ValidationException'
  | 'IncorrectKeyException'
  | 'AccessDeniedException'
  | 'KMSInternalException'
  /** Not an AWS code: the KMS could not be reached (connection refused, timed out), so no answer at all. */
  | 'KmsUnreachable';

export class KmsError extends PkpError {
  constructor(code: KmsErrorCode, message: string) {
    super(code, message);
    this.name = 'KmsError';
  }
}

/** A wait that ran past its own deadline. */
export class DeadlineError extends PkpError {
  constructor(message = 'deadline exceeded') {
    super('DeadlineExceeded', message);
    this.name = 'DeadlineError';
  }
}

/** A bad row or value in an input file: names the line. */
export class InputError extends PkpError {
  constructor(message: string, readonly line?: number) {
    super('InvalidInput', line === undefined ? message : `line ${line}: ${message}`);
    this.name = 'InputError';
  }
}
