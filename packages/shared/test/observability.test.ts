import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, requestIdFrom } from '../src/log.js';
import { createMetrics, renderMetrics } from '../src/metrics.js';

describe('logs', () => {
  it('writes one JSON line per event with the service and a level name', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) });
    const log = createLogger('territory', { LOG_LEVEL: 'info' }, sink);
    log.child({ requestId: 'r1' }).info({ operationName: 'Q' }, 'request');
    log.debug('not at info level');
    assert.equal(lines.length, 1);
    assert.ok(lines[0].endsWith('\n') && !lines[0].slice(0, -1).includes('\n'));
    const entry = JSON.parse(lines[0]);
    assert.equal(entry.service, 'territory');
    assert.equal(entry.level, 'info');
    assert.equal(entry.requestId, 'r1');
    assert.equal(entry.msg, 'request');
    assert.match(entry.time, /^\d{4}-\d\d-\d\dT/);
  });

  it('keeps a sane x-request-id and replaces anything else with a UUID', () => {
    assert.equal(requestIdFrom({ 'x-request-id': 'abc-123_x.y' }), 'abc-123_x.y');
    assert.equal(requestIdFrom(new Headers({ 'x-request-id': 'from-fetch' })), 'from-fetch');
    assert.equal(requestIdFrom({ 'x-request-id': ['first', 'second'] }), 'first');
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    for (const bad of [undefined, '', 'has space', 'x'.repeat(129), 'new\nline', '{"json":1}']) {
      assert.match(requestIdFrom({ 'x-request-id': bad }), uuid, String(bad));
    }
    assert.match(requestIdFrom(undefined), uuid);
  });
});

describe('metrics', () => {
  it('gives each service its own registry, so two in one process do not clash', async () => {
    const a = createMetrics('territory');
    const b = createMetrics('equipment');
    a.httpRequestDuration.observe({ method: 'POST', route: '/graphql', status: 200 }, 0.004);
    a.graphqlOperations.inc({ type: 'query', outcome: 'ok' });
    b.graphqlOperations.inc({ type: 'mutation', outcome: 'error' });
    const text = (await renderMetrics(a)).body;
    const bucket = text.split('\n').find((line) => line.startsWith('http_request_duration_seconds_bucket{le="0.005"'));
    for (const part of ['method="POST"', 'route="/graphql"', 'status="200"', 'service="territory"', '} 1']) assert.ok(bucket?.includes(part), part);
    assert.match(text, /graphql_operations_total\{type="query",outcome="ok",service="territory"\} 1/);
    assert.doesNotMatch(text, /mutation/);
    assert.match(text, /nodejs_eventloop_lag_seconds/);
    assert.match((await renderMetrics(b)).body, /graphql_operations_total\{type="mutation",outcome="error",service="equipment"\} 1/);
  });
});
