/** Which of `partitions` a queue's events go to: FNV-1a of the queue id, so every process agrees. */
export function partitionOf(queueId: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < queueId.length; i++) {
    h ^= queueId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

export function checkPartitions(partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1024) throw new RangeError('partitions must be an integer in 1..1024');
  return partitions;
}
