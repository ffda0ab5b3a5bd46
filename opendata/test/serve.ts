/** The open-data handler on a real socket, and a raw HTTP client that leaves content codings alone. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createOpendataHandler, type OpendataOptions } from '@connecte/opendata';

export interface ServedOpendata {
  base: string;
  close(): Promise<void>;
}

/** `publicUrl` defaults to the server's own origin, so that the links it publishes can be followed. */
export async function serveOpendata(
  options: Omit<OpendataOptions, 'publicUrl'> & { publicUrl?: string },
  host = '127.0.0.1',
): Promise<ServedOpendata> {
  let handle: ReturnType<typeof createOpendataHandler> | undefined;
  const server = http.createServer((req, res) => {
    handle!(req, res).then(
      (handled) => {
        if (!handled) res.writeHead(404).end();
      },
      // A 500 here is a defect the tests look for: bad input must never reach it.
      () => (res.headersSent ? res.destroy() : res.writeHead(500).end()),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  handle = createOpendataHandler({ ...options, publicUrl: options.publicUrl ?? base });
  return {
    base,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The bytes as sent, still encoded. */
  body: Buffer;
}

/** `fetch` decodes br/gzip by itself and hides what was on the wire; node:http does not. */
export function rawRequest(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
