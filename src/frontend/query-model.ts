/**
 * The SQS Query protocol's names for each action's input and output members, as the SQS service
 * model (2012-11-05) gives them: the JSON member name, its wire (locationName) name, and its
 * shape. Lists and maps in SQS are all "flattened": `Attribute.1.Name`, `QueueUrl` repeated.
 * The codec reads and writes the JSON shape through these tables, so the actions never see Query.
 */

export type Shape =
  | 'string'
  | 'int'
  | 'bool'
  | { list: string; of: Shape }
  | { map: string; key: string; value: string; of: Shape }
  | { struct: Members };

/** JSON member name → [wire name, shape]. Order is the order XML elements are written in. */
export type Members = Readonly<Record<string, readonly [string, Shape]>>;

const s = (wire: string): readonly [string, Shape] => [wire, 'string'];
const i = (wire: string): readonly [string, Shape] => [wire, 'int'];
const strings = (wire: string): readonly [string, Shape] => [wire, { list: wire, of: 'string' }];

const messageAttributeValue: Shape = {
  struct: {
    StringValue: s('StringValue'),
    BinaryValue: s('BinaryValue'),
    // Non-flattened in the model: `…Value.StringListValue.StringListValue.N`.
    StringListValues: ['StringListValue', { list: 'StringListValue', of: 'string' }],
    BinaryListValues: ['BinaryListValue', { list: 'BinaryListValue', of: 'string' }],
    DataType: s('DataType'),
  },
};
const nameValueMap = (wire: string, of: Shape): readonly [string, Shape] => [wire, { map: wire, key: 'Name', value: 'Value', of }];
const attributes = nameValueMap('Attribute', 'string');
const messageAttributes = nameValueMap('MessageAttribute', messageAttributeValue);
const messageSystemAttributes = nameValueMap('MessageSystemAttribute', messageAttributeValue);
const tags: readonly [string, Shape] = ['Tag', { map: 'Tag', key: 'Key', value: 'Value', of: 'string' }];
const entries = (wire: string, members: Members): readonly [string, Shape] => [wire, { list: wire, of: { struct: members } }];

const sendEntry: Members = {
  Id: s('Id'),
  MessageBody: s('MessageBody'),
  DelaySeconds: i('DelaySeconds'),
  MessageAttributes: messageAttributes,
  MessageSystemAttributes: messageSystemAttributes,
  MessageDeduplicationId: s('MessageDeduplicationId'),
  MessageGroupId: s('MessageGroupId'),
};
const sendResult: Members = {
  MessageId: s('MessageId'),
  MD5OfMessageBody: s('MD5OfMessageBody'),
  MD5OfMessageAttributes: s('MD5OfMessageAttributes'),
  MD5OfMessageSystemAttributes: s('MD5OfMessageSystemAttributes'),
  SequenceNumber: s('SequenceNumber'),
};
const batchError: readonly [string, Shape] = entries('BatchResultErrorEntry', {
  Id: s('Id'), SenderFault: ['SenderFault', 'bool'], Code: s('Code'), Message: s('Message'),
});
const batchResult = (entryWire: string, entry: Members): Members => ({
  Successful: entries(entryWire, entry),
  Failed: batchError,
});
const moveTask: Members = {
  TaskHandle: s('TaskHandle'),
  Status: s('Status'),
  SourceArn: s('SourceArn'),
  DestinationArn: s('DestinationArn'),
  MaxNumberOfMessagesPerSecond: i('MaxNumberOfMessagesPerSecond'),
  ApproximateNumberOfMessagesMoved: i('ApproximateNumberOfMessagesMoved'),
  ApproximateNumberOfMessagesToMove: i('ApproximateNumberOfMessagesToMove'),
  FailureReason: s('FailureReason'),
  StartedTimestamp: i('StartedTimestamp'),
};

export interface ActionModel {
  input: Members;
  /** Members of `<Action>Result`; undefined for actions whose response has only ResponseMetadata. */
  output?: Members;
}

export const QUERY_MODEL: Readonly<Record<string, ActionModel>> = {
  CreateQueue: {
    input: { QueueName: s('QueueName'), Attributes: attributes, tags },
    output: { QueueUrl: s('QueueUrl') },
  },
  GetQueueUrl: {
    input: { QueueName: s('QueueName'), QueueOwnerAWSAccountId: s('QueueOwnerAWSAccountId') },
    output: { QueueUrl: s('QueueUrl') },
  },
  ListQueues: {
    input: { QueueNamePrefix: s('QueueNamePrefix'), NextToken: s('NextToken'), MaxResults: i('MaxResults') },
    output: { QueueUrls: strings('QueueUrl'), NextToken: s('NextToken') },
  },
  DeleteQueue: { input: { QueueUrl: s('QueueUrl') } },
  PurgeQueue: { input: { QueueUrl: s('QueueUrl') } },
  GetQueueAttributes: {
    input: { QueueUrl: s('QueueUrl'), AttributeNames: strings('AttributeName') },
    output: { Attributes: attributes },
  },
  SetQueueAttributes: { input: { QueueUrl: s('QueueUrl'), Attributes: attributes } },
  SendMessage: {
    input: { QueueUrl: s('QueueUrl'), ...withoutId(sendEntry) },
    output: sendResult,
  },
  SendMessageBatch: {
    input: { QueueUrl: s('QueueUrl'), Entries: entries('SendMessageBatchRequestEntry', sendEntry) },
    output: batchResult('SendMessageBatchResultEntry', { Id: s('Id'), ...sendResult }),
  },
  ReceiveMessage: {
    input: {
      QueueUrl: s('QueueUrl'),
      AttributeNames: strings('AttributeName'),
      MessageSystemAttributeNames: strings('MessageSystemAttributeName'),
      MessageAttributeNames: strings('MessageAttributeName'),
      MaxNumberOfMessages: i('MaxNumberOfMessages'),
      VisibilityTimeout: i('VisibilityTimeout'),
      WaitTimeSeconds: i('WaitTimeSeconds'),
      ReceiveRequestAttemptId: s('ReceiveRequestAttemptId'),
    },
    output: {
      Messages: entries('Message', {
        MessageId: s('MessageId'),
        ReceiptHandle: s('ReceiptHandle'),
        MD5OfBody: s('MD5OfBody'),
        Body: s('Body'),
        Attributes: attributes,
        MD5OfMessageAttributes: s('MD5OfMessageAttributes'),
        MessageAttributes: messageAttributes,
      }),
    },
  },
  DeleteMessage: { input: { QueueUrl: s('QueueUrl'), ReceiptHandle: s('ReceiptHandle') } },
  DeleteMessageBatch: {
    input: { QueueUrl: s('QueueUrl'), Entries: entries('DeleteMessageBatchRequestEntry', { Id: s('Id'), ReceiptHandle: s('ReceiptHandle') }) },
    output: batchResult('DeleteMessageBatchResultEntry', { Id: s('Id') }),
  },
  ChangeMessageVisibility: {
    input: { QueueUrl: s('QueueUrl'), ReceiptHandle: s('ReceiptHandle'), VisibilityTimeout: i('VisibilityTimeout') },
  },
  ChangeMessageVisibilityBatch: {
    input: {
      QueueUrl: s('QueueUrl'),
      Entries: entries('ChangeMessageVisibilityBatchRequestEntry', { Id: s('Id'), ReceiptHandle: s('ReceiptHandle'), VisibilityTimeout: i('VisibilityTimeout') }),
    },
    output: batchResult('ChangeMessageVisibilityBatchResultEntry', { Id: s('Id') }),
  },
  TagQueue: { input: { QueueUrl: s('QueueUrl'), Tags: tags } },
  UntagQueue: { input: { QueueUrl: s('QueueUrl'), TagKeys: strings('TagKey') } },
  ListQueueTags: { input: { QueueUrl: s('QueueUrl') }, output: { Tags: tags } },
  AddPermission: {
    input: { QueueUrl: s('QueueUrl'), Label: s('Label'), AWSAccountIds: strings('AWSAccountId'), Actions: strings('ActionName') },
  },
  RemovePermission: { input: { QueueUrl: s('QueueUrl'), Label: s('Label') } },
  ListDeadLetterSourceQueues: {
    input: { QueueUrl: s('QueueUrl'), NextToken: s('NextToken'), MaxResults: i('MaxResults') },
    output: { queueUrls: strings('QueueUrl'), NextToken: s('NextToken') },
  },
  StartMessageMoveTask: {
    input: { SourceArn: s('SourceArn'), DestinationArn: s('DestinationArn'), MaxNumberOfMessagesPerSecond: i('MaxNumberOfMessagesPerSecond') },
    output: { TaskHandle: s('TaskHandle') },
  },
  CancelMessageMoveTask: {
    input: { TaskHandle: s('TaskHandle') },
    output: { ApproximateNumberOfMessagesMoved: i('ApproximateNumberOfMessagesMoved') },
  },
  ListMessageMoveTasks: {
    input: { SourceArn: s('SourceArn'), MaxResults: i('MaxResults') },
    output: { Results: entries('ListMessageMoveTasksResultEntry', moveTask) },
  },
};

function withoutId(members: Members): Members {
  const { Id: _id, ...rest } = members;
  return rest;
}
