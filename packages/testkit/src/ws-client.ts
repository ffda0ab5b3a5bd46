/**
 * A graphql-ws (graphql-transport-ws) client that keeps every message and close in order and
 * can stop reading its socket, for tests of what a server does to slow or hostile clients.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Socket } from 'node:net';
import WebSocket from 'ws';

export interface Message {
  type: string;
  id?: string;
  payload?: any;
  /** When it arrived (Date.now()). */
  at: number;
}

export class RawClient {
  readonly messages: Message[] = [];
  close: { code: number; reason: string; at: number } | null = null;

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => this.messages.push({ ...JSON.parse(String(data)), at: Date.now() }));
    socket.on('close', (code, reason) => (this.close = { code, reason: String(reason), at: Date.now() }));
    socket.on('error', () => {});
  }

  /** Connects and initialises; resolves once acknowledged or closed (see `close`). */
  static async open(url: string, authorization?: string): Promise<RawClient> {
    const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    const client = new RawClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    client.send({ type: 'connection_init', payload: authorization ? { authorization } : {} });
    await client.until(() => client.messages.some((m) => m.type === 'connection_ack') || client.close !== null, 'connection_ack');
    return client;
  }

  send(message: object): void {
    this.socket.send(JSON.stringify(message));
  }

  subscribe(id: string, query: string, variables: Record<string, unknown> = {}): void {
    this.send({ id, type: 'subscribe', payload: { query, variables } });
  }

  of(id: string): Message[] {
    return this.messages.filter((m) => m.id === id);
  }

  /** Stops reading: what the server sends stays in the kernel's buffers, then in the server's. */
  pause(): void {
    (this.socket as unknown as { _socket: Socket })._socket.pause();
  }

  resume(): void {
    (this.socket as unknown as { _socket: Socket })._socket.resume();
  }

  async until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  }

  terminate(): void {
    this.socket.terminate();
  }
}
