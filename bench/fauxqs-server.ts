// fauxqs, the npm SQS emulator (in memory, no encryption, no durability), as the peer PKP is measured
// beside. Pinned to 1.9.2: 2.3 and later need Node 22.5 (node:sqlite).
import { startFauxqs } from 'fauxqs';

const server = await startFauxqs({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1', logger: false });
process.stdout.write(`FAUXQS ${server.port}\n`);
