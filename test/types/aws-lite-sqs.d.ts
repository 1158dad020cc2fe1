// @aws-lite/sqs ships no types; the test reaches it through its own typed view (LiteSqs).
declare module '@aws-lite/sqs';
