// A bare node:http route that echoes the request body: the floor of the HTTP layer alone, beside
// the fastify echo (bench/echo-server.ts) and the endpoint itself.
import { createServer } from 'node:http';

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'content-length': body.length });
    res.end(body);
  });
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`ECHO ${(server.address() as { port: number }).port}\n`);
});
