/**
 * `npm run bench [-- section...]`: key cache, AES-GCM, SendMessage through the SQS endpoint, the
 * simulator and the Predictive Key Prefetcher. Every figure is measured beside its limit on the same
 * machine in the same run; results go to bench/results/<section>.json. Sections: keycache, aead,
 * send, sim, prefetcher, sqs-peers, stores, distributed (default: all).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchKeyCache } from './keycache.ts';
import { benchAead } from './aead.ts';
import { benchSend } from './send.ts';
import { benchSim } from './sim.ts';
import { benchPrefetcher } from './prefetcher.ts';
import { benchSqsPeers } from './sqs-peers.ts';
import { benchStores } from './stores.ts';
import { benchDistributed } from './distributed.ts';

const sections: Record<string, () => Promise<Record<string, unknown>>> = {
  keycache: benchKeyCache,
  aead: benchAead,
  send: benchSend,
  sim: benchSim,
  prefetcher: benchPrefetcher,
  'sqs-peers': benchSqsPeers,
  stores: benchStores,
  distributed: benchDistributed,
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = wanted.filter((w) => !(w in sections));
if (unknown.length > 0) {
  process.stderr.write(`unknown section(s): ${unknown.join(', ')}; known: ${Object.keys(sections).join(', ')}\n`);
  process.exit(2);
}
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
for (const name of wanted.length > 0 ? wanted : Object.keys(sections)) {
  process.stderr.write(`bench ${name}...\n`);
  const result = { section: name, node: process.version, at: new Date().toISOString(), ...(await sections[name]!()) };
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
