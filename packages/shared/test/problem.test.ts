/**
 * Every HTTP error outside GraphQL has one body: RFC 9457 problem details, served as
 * `application/problem+json`, with the hub's `code` and the `field` at fault.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PROBLEM_CONTENT_TYPE, sendProblem } from '../src/problem.js';

describe('problem details (RFC 9457)', () => {
  let server: http.Server;
  let base: string;

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url?.startsWith('/teapot')) {
        sendProblem(res, 418, { code: 'TEAPOT', detail: 'short and stout', instance: 'urn:occurrence:1' }, { 'content-type': 'text/plain', 'x-extra': 'kept' });
      } else {
        sendProblem(res, 400, { code: 'BAD_USER_INPUT', detail: 'bbox: must be four numbers', field: 'bbox' }, { allow: 'GET' });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('sends type, title, status, detail, instance, code and field as application/problem+json', async () => {
    const response = await fetch(`${base}/opendata/equipment.geojson?bbox=1,2`);
    assert.equal(response.status, 400);
    assert.equal(response.headers.get('content-type'), PROBLEM_CONTENT_TYPE);
    assert.match(PROBLEM_CONTENT_TYPE, /^application\/problem\+json/);
    assert.equal(response.headers.get('allow'), 'GET', 'extra headers are sent');
    const text = await response.text();
    assert.equal(Number(response.headers.get('content-length')), Buffer.byteLength(text));
    assert.deepEqual(JSON.parse(text), {
      type: 'about:blank',
      title: 'Bad Request',
      status: 400,
      detail: 'bbox: must be four numbers',
      instance: '/opendata/equipment.geojson',
      code: 'BAD_USER_INPUT',
      field: 'bbox',
    });
  });

  it('keeps its content type whatever the extra headers say, and an instance given by the caller', async () => {
    const response = await fetch(`${base}/teapot`);
    assert.equal(response.headers.get('content-type'), PROBLEM_CONTENT_TYPE);
    assert.equal(response.headers.get('x-extra'), 'kept');
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body.title, "I'm a Teapot");
    assert.equal(body.instance, 'urn:occurrence:1');
    assert.equal('field' in body, false, 'no field when none is at fault');
  });

  it('does not echo a very long path back, and sends no body to HEAD', async () => {
    const long = await (await fetch(`${base}/${'x'.repeat(2000)}`)).json();
    assert.equal((long as Record<string, unknown>).instance, undefined);
    const head = await new Promise<{ status: number; length: string | undefined; body: string }>((resolve, reject) => {
      http
        .request(`${base}/opendata`, { method: 'HEAD' }, (res) => {
          let body = '';
          res.on('data', (chunk) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, length: res.headers['content-length'], body }));
        })
        .on('error', reject)
        .end();
    });
    assert.equal(head.status, 400);
    assert.ok(Number(head.length) > 0, 'HEAD has the length GET would have');
    assert.equal(head.body, '');
  });
});
