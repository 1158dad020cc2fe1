/** A message as both stores' tables hold it (the same columns in SQLite and PostgreSQL), and what the store hands out. */
import type { StoredMessage } from './types.ts';

export interface MessageRow {
  seq: number;
  queue_id: string;
  message_id: string;
  body: Buffer;
  attributes: Buffer | null;
  encrypted_dek: Buffer;
  dek_id: string;
  kms_key_id: string;
  sender: string;
  sent_at: number;
  visible_at: number;
  body_bytes: number;
  receive_count: number;
  first_received_at: number | null;
  receipt_nonce: string | null;
  group_id: string | null;
  dedup_id: string | null;
  sequence_number: string | null;
  dead_letter_source: string | null;
}

export function toStored(row: MessageRow): StoredMessage {
  return {
    messageId: row.message_id,
    queueId: row.queue_id,
    bodyCiphertext: row.body,
    attributesCiphertext: row.attributes,
    encryptedDek: row.encrypted_dek,
    dekId: row.dek_id,
    kmsKeyId: row.kms_key_id,
    senderPrincipal: row.sender,
    sentAt: row.sent_at,
    visibleAt: row.visible_at,
    bodyBytes: row.body_bytes,
    receiveCount: row.receive_count,
    firstReceivedAt: row.first_received_at,
    ...(row.group_id !== null ? { groupId: row.group_id } : {}),
    ...(row.dedup_id !== null ? { dedupId: row.dedup_id } : {}),
    ...(row.sequence_number !== null ? { sequenceNumber: row.sequence_number } : {}),
    ...(row.dead_letter_source !== null ? { deadLetterSourceArn: row.dead_letter_source } : {}),
  };
}
