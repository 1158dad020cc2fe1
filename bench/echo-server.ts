// A bare fastify route that echoes the request body: the HTTP limit SendMessage is measured against.
import Fastify from 'fastify';

const app = Fastify({ logger: false, bodyLimit: 2 * 1024 * 1024 });
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
app.post('/', async (request, reply) => {
  reply.header('content-type', 'application/x-amz-json-1.0');
  return request.body;
});
await app.listen({ port: Number(process.argv[2] ?? 0), host: '127.0.0.1' });
process.stdout.write(`ECHO ${(app.server.address() as { port: number }).port}\n`);
