/** graphql-ws subscriptions as a well-behaved client makes them (graphql-ws's own client), kept for assertions. */
import assert from 'node:assert/strict';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface Subscription {
  /** Every message received so far (`{ data }` or `{ errors }`). */
  received: any[];
  /** Resolves once `n` messages have arrived; fails after 10 s naming what did arrive. */
  waitFor(n: number): Promise<any[]>;
}

/** Subscriptions to the GraphQL endpoint `url` (http or ws); `dispose` closes every socket opened. */
export function subscriptions(url: string) {
  const wsUrl = url.replace(/^http/, 'ws');
  const clients: Client[] = [];
  const subscribe = (query: string, token?: string): Subscription => {
    const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: token ? { authorization: `Bearer ${token}` } : {}, retryAttempts: 0 });
    clients.push(client);
    const received: any[] = [];
    const waiters: (() => void)[] = [];
    const done = new Promise<void>((resolve, reject) => {
      client.subscribe({ query }, {
        next: (value) => {
          received.push(value);
          waiters.splice(0).forEach((w) => w());
        },
        error: reject,
        complete: resolve,
      });
    });
    done.catch(() => {});
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while (received.length < n) {
        assert.ok(Date.now() < deadline, `timed out waiting for ${n} events, got ${JSON.stringify(received)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
      return received;
    };
    return { received, waitFor };
  };
  return { subscribe, dispose: () => Promise.all(clients.map((client) => client.dispose())) };
}
