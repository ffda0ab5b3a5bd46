/**
 * A subgraph's HTTP routes (its registry entry's `routes`: `/open311/v2`, `/ingest`) are served
 * by the subgraph on its own port and reached from the gateway's port through this forwarder:
 * the gateway mounts them by declaration without loading the subgraph's code.
 */
import http from 'node:http';
import { sendProblem } from '@connecte/shared/problem';
import type { Logger } from '@connecte/shared/log';
import type { RouteHandler } from './modules.js';
import { forwardedChain } from './data-source.js';

/** Per-connection headers (RFC 9110 §7.6.1) stay on their own hop. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

const withoutHopByHop = (headers: http.IncomingHttpHeaders) =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));

export function forwardTo(options: { subgraph: string; url: string; timeoutMs: number; log: Pick<Logger, 'warn'>; agent: http.Agent }): RouteHandler {
  const target = new URL(options.url);
  return (request, response) =>
    new Promise<void>((resolve) => {
      // Once the subgraph has answered, its answer is the client's, whatever happens to the request
      // body still being sent: a subgraph that refuses early (413) and closes must not turn into a 502.
      let answered = false;
      const fail = (status: number, detail: string) => {
        if (answered) return;
        options.log.warn({ subgraph: options.subgraph, path: request.url }, detail);
        if (response.headersSent) response.destroy();
        else sendProblem(response, status, { code: status === 504 ? 'SUBGRAPH_TIMEOUT' : 'SUBGRAPH_UNAVAILABLE', detail });
        resolve();
      };
      const upstream = http.request(
        {
          protocol: target.protocol,
          hostname: target.hostname,
          port: target.port,
          method: request.method,
          path: request.url,
          headers: {
            ...withoutHopByHop(request.headers),
            host: target.host,
            // What the subgraph needs to answer as the hub would (links, client address), believed only
            // when the gateway's address is among the subgraph's TRUSTED_PROXIES.
            ...(request.headers.host ? { 'x-forwarded-host': request.headers.host } : {}),
            'x-forwarded-for': forwardedChain(request),
          },
          agent: options.agent,
          timeout: options.timeoutMs,
        },
        (answer) => {
          answered = true;
          const headers = withoutHopByHop(answer.headers);
          // Answered before the whole body was sent (a refusal): stop sending it, let the rest of
          // it fall away, and close the client's connection after the answer rather than reading on.
          const early = !request.complete;
          if (early) {
            request.unpipe(upstream);
            request.resume();
            headers.connection = 'close';
          }
          response.writeHead(answer.statusCode ?? 502, headers);
          answer.pipe(response);
          answer.once('end', () => {
            if (early) upstream.destroy();
            resolve();
          });
          answer.once('error', () => {
            response.destroy();
            resolve();
          });
        },
      );
      upstream.once('timeout', () => upstream.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      upstream.once('error', (error: NodeJS.ErrnoException) =>
        error.code === 'ETIMEDOUT'
          ? fail(504, `the ${options.subgraph} subgraph did not answer within ${options.timeoutMs} ms`)
          : fail(502, `the ${options.subgraph} subgraph is not reachable (${error.code ?? error.message})`),
      );
      request.pipe(upstream);
    });
}
