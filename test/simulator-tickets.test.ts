/**
 * The city simulator's citizens (scripts/simulator.ts, `CitizenReports`) against a hub with the
 * tickets service: a citizen reports a problem through the gateway, an operator of the
 * responsible collectivity acknowledges it and makes a work order for one of its agents, who
 * starts it and closes it out — the ticket ends RESOLVED with every step in its history. Without
 * the tickets service the simulator turns its citizens off instead of failing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, startHub, startTestBroker, type Hub, type TestBroker, type TestDatabase } from '@connecte/testkit';
import { startSimulator } from '../scripts/simulator.ts';

describe('the simulator’s citizens', () => {
  let broker: TestBroker;
  let database: TestDatabase;
  let hub: Hub;
  let pool: pg.Pool;

  before(async () => {
    broker = await startTestBroker();
    database = await createTestDatabase({ seed: true });
    hub = await startHub(database.url, { MQTT_URL: broker.url, ...broker.env }, { subgraphs: ['territory', 'equipment', 'telemetry', 'tickets'] });
    pool = new pg.Pool({ connectionString: database.url, max: 2 });
  });

  after(async () => {
    await pool?.end();
    await hub?.close();
    await database?.drop();
    await broker?.stop();
  });

  it('report problems that the control room and an agent handle to the end, through the gateway', async () => {
    const lines: string[] = [];
    const simulator = await startSimulator({
      config: hub.config,
      gatewayUrl: hub.gatewayUrl,
      // Fast enough that a report's handling (about two simulated hours) takes about a second.
      speed: 8_000,
      faults: { lightMeanSeconds: 0, signalMeanSeconds: 0 },
      citizens: { reportMeanSeconds: 0 },
      select: (device) => device.id === 'lp-chalons-00002',
      ownCredentials: 0,
      clientIdPrefix: `connecte-simulator-citizens-${process.pid}`,
      seed: 11,
      log: (line) => lines.push(line),
    });
    try {
      const handled: string[] = [];
      for (let i = 0; i < 3; i++) {
        const ticketId = await simulator.reportProblem();
        if (ticketId) handled.push(ticketId);
      }
      assert.ok(handled.length >= 1, lines.join('\n'));
      assert.deepEqual(simulator.citizenReports(), { reported: 3, closedOut: handled.length });
      for (const ticketId of handled) {
        const { rows: tickets } = await pool.query(`SELECT status, reporter_sub, collectivity_id, source FROM tickets WHERE id = $1`, [ticketId]);
        assert.equal(tickets[0].status, 'RESOLVED');
        assert.equal(tickets[0].source, 'APP');
        assert.match(tickets[0].reporter_sub, /^simulated-citizen-\d+$/);
        const collectivityId = tickets[0].collectivity_id;
        const { rows: moves } = await pool.query(`SELECT action, to_status, actor_sub FROM ticket_history WHERE ticket_id = $1 ORDER BY id`, [ticketId]);
        assert.deepEqual(
          moves.map((m) => [m.action, m.to_status, m.actor_sub.replace(/-\d+$/, '-n')]),
          [
            ['CREATED', 'NEW', 'simulated-citizen-n'],
            ['TRANSITION', 'ACKNOWLEDGED', `simulated-operator-${collectivityId}`],
            ['TRANSITION', 'ASSIGNED', `simulated-operator-${collectivityId}`],
            ['TRANSITION', 'IN_PROGRESS', `simulated-agent-${collectivityId}-n`],
            ['TRANSITION', 'RESOLVED', `simulated-agent-${collectivityId}-n`],
          ],
        );
        const { rows: works } = await pool.query(`SELECT status, origin, assignee_sub, close_notes, minutes_spent FROM interventions WHERE ticket_id = $1`, [ticketId]);
        assert.equal(works.length, 1);
        assert.equal(works[0].status, 'DONE');
        assert.equal(works[0].origin, 'TICKET');
        assert.match(works[0].assignee_sub, new RegExp(`^simulated-agent-${collectivityId}-[1-3]$`));
        assert.ok(works[0].close_notes.length > 0);
        assert.ok(works[0].minutes_spent >= 15 && works[0].minutes_spent <= 60, `${works[0].minutes_spent} minutes`);
      }
    } finally {
      await simulator.stop();
    }
  });
});
