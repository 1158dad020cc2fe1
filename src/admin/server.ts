/**
 * The admin port: the live dashboard (`/`), its data (`/api/stats`), Prometheus metrics
 * (`/metrics`) and the health probes. Everything but the probes needs the admin token, given as
 * `Authorization: Bearer T`, the `pkp_admin` cookie, or once as `/?token=T` (which sets the cookie
 * and redirects, so the token leaves the address bar).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Metrics } from '../core/metrics.ts';
import { addHealthRoutes, type ReadinessParts } from '../health.ts';
import type { KeyCache } from '../keycache/key-cache.ts';
import { DASHBOARD_HTML, DASHBOARD_JS } from './dashboard-page.ts';
import type { ServiceStats } from './stats.ts';

export interface AdminOptions {
  /** The admin credential; generated when not given. */
  token?: string;
}

export interface AdminServerParts extends AdminOptions {
  frontends: { nodeId: string; cache: KeyCache }[];
  metrics: Metrics;
  health: ReadinessParts;
  stats?: ServiceStats;
}

const COOKIE = 'pkp_admin';

export function generateAdminToken(): string {
  return randomBytes(24).toString('base64url');
}

export function createAdminServer(parts: AdminServerParts & { token: string }): FastifyInstance {
  const { metrics, frontends, token } = parts;
  const expected = Buffer.from(token);
  const matches = (given: string | undefined): boolean => {
    if (given === undefined) return false;
    const b = Buffer.from(given);
    return b.length === expected.length && timingSafeEqual(b, expected);
  };
  const credentialOf = (request: FastifyRequest): string | undefined => {
    const auth = request.headers.authorization;
    if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7).trim();
    for (const part of (request.headers.cookie ?? '').split(';')) {
      const [name, ...value] = part.trim().split('=');
      if (name === COOKIE) return value.join('=');
    }
    return undefined;
  };

  const app = Fastify({ logger: false });
  addHealthRoutes(app, parts.health);
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?', 1)[0];
    if (path === '/healthz' || path === '/readyz') return;
    if (path === '/' && matches((request.query as { token?: string }).token)) {
      // HttpOnly: page scripts never see it; SameSite=Strict: other sites cannot ride on it.
      return reply.header('set-cookie', `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`).redirect('/', 303);
    }
    if (!matches(credentialOf(request))) {
      return reply.code(401).header('www-authenticate', 'Bearer realm="pkp-admin"').type('text/plain')
        .send('401: the admin port needs the token printed by `pkp up` (Authorization: Bearer <token>, or open /?token=<token> once)\n');
    }
  });

  app.get('/metrics', async (_request, reply) => {
    for (const f of frontends) metrics.keyCacheEntries.set({ node: f.nodeId }, f.cache.size);
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  const stats = parts.stats;
  if (stats) {
    const require = createRequire(import.meta.url);
    const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'));
    const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'));
    const page = (reply: import('fastify').FastifyReply) => reply
      .header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
      .header('cache-control', 'no-store');
    app.get('/', async (_request, reply) => page(reply).type('text/html; charset=utf-8').send(DASHBOARD_HTML));
    app.get('/assets/uPlot.iife.min.js', async (_request, reply) => reply.type('text/javascript').header('cache-control', 'max-age=3600').send(uplotJs));
    app.get('/assets/dashboard.js', async (_request, reply) => reply.type('text/javascript').header('cache-control', 'no-store').send(DASHBOARD_JS));
    app.get('/assets/uPlot.min.css', async (_request, reply) => reply.type('text/css').header('cache-control', 'max-age=3600').send(uplotCss));
    app.get('/api/stats', async (request, reply) => {
      const seconds = Math.min(3600, Math.max(10, Number((request.query as { seconds?: string }).seconds ?? 600) || 600));
      return reply.header('cache-control', 'no-store').send(await stats.snapshot(seconds));
    });
    app.get('/favicon.ico', async (_request, reply) => reply.code(204).send());
  }
  return app;
}
