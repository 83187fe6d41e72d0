// The shape every admin HTTP port of the mesh shares (mesh-server :15014, mesh-agent :15000 and
// :15021): a route table, JSON 404 listing the routes, 405 with Allow, JSON errors, quiet logging.
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log';

export type AdminMethod = 'GET' | 'POST';
export type AdminHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

export interface AdminRoute {
  method: AdminMethod;
  url: string;
  /** One line for the route index a 404 answers with. */
  description: string;
  handler: AdminHandler;
}

export interface AdminHttpAddress {
  host: string;
  port: number;
  /** Base URL, e.g. `http://127.0.0.1:15014`, as meshctl's `--server`/`--agent` expect it. */
  url: string;
}

export interface AdminHttp {
  listen(host: string, port: number): Promise<AdminHttpAddress>;
  close(): Promise<void>;
}

/** A query parameter when it was given once as a string. */
export function queryString(request: FastifyRequest, name: string): string | undefined {
  const query = request.query;
  if (typeof query !== 'object' || query === null) return undefined;
  const value = (query as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * A child with its own level, at `warn` at most: fastify's per-request info lines are noise, and
 * raising the program's level at run time must not turn every admin request into log lines.
 */
function fastifyLogger(logger: Logger, component: string): Logger {
  const warn = logger.levels.values.warn ?? 40;
  const level = logger.levelVal > warn ? logger.level : 'warn';
  return logger.child({ component: `${component}-http` }, { level });
}

export function createAdminHttp(logger: Logger, component: string, routes: readonly AdminRoute[]): AdminHttp {
  const log = logger.child({ component });
  const app = Fastify({ loggerInstance: fastifyLogger(logger, component) });
  for (const route of routes) app.route({ method: route.method, url: route.url, handler: route.handler });

  const index = routes.map((route) => `${route.method} ${route.url}: ${route.description}`);
  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    const allowed = routes.filter((route) => route.url === path).map((route) => route.method);
    if (allowed.length > 0) {
      // fastify answers HEAD for GET routes itself, so HEAD belongs in Allow wherever GET does.
      const allow = allowed.includes('GET') ? [...allowed, 'HEAD'] : allowed;
      return reply.code(405).header('allow', allow.join(', ')).send({
        error: 'Method Not Allowed',
        message: `${request.method} ${path} is not supported; use ${allowed.join(' or ')}`,
      });
    }
    return reply.code(404).send({ error: 'Not Found', message: `no route ${request.method} ${path}`, routes: index });
  });

  // No route reads a body. Discarding any body keeps a bare `curl -X POST -H 'content-type:
  // application/json'` working instead of failing on the empty JSON document it sends.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => done(null, undefined));

  app.setErrorHandler(async (error, request, reply) => {
    const code = (error as { statusCode?: unknown }).statusCode;
    const statusCode = typeof code === 'number' && code >= 400 && code < 600 ? code : 500;
    const message = error instanceof Error ? error.message : String(error);
    if (statusCode >= 500) log.error({ err: error, method: request.method, url: request.url }, 'admin request failed');
    return reply.code(statusCode).send({ error: STATUS_CODES[statusCode] ?? 'Error', message });
  });

  let closed = false;
  return {
    async listen(host: string, port: number): Promise<AdminHttpAddress> {
      await app.listen({ host, port });
      const bound = app.server.address() as AddressInfo;
      const urlHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
      const url = `http://${urlHost}:${bound.port}`;
      log.info({ url }, `${component} HTTP listening`);
      return { host: bound.address, port: bound.port, url };
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await app.close();
    },
  };
}
