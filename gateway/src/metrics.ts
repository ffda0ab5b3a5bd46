import type { ApolloServerPlugin } from '@apollo/server';
import { createMetrics, type Metrics } from '@connecte/shared/metrics';
import { Gauge } from 'prom-client';

export interface GatewayMetrics extends Metrics {
  /** Counts each operation by type and outcome. */
  apolloPlugin: ApolloServerPlugin;
  /** Reports, at each scrape, the subscriptions the gateway holds open to subgraphs. */
  observeUpstreamSubscriptions(count: () => number): void;
}

export function createGatewayMetrics(): GatewayMetrics {
  const metrics = createMetrics('gateway');
  let upstreamCount = () => 0;
  new Gauge({
    name: 'gateway_upstream_subscriptions',
    help: 'Subscriptions the gateway holds open to subgraphs (one per client subscription)',
    registers: [metrics.registry],
    collect() {
      this.set(upstreamCount());
    },
  });
  const apolloPlugin: ApolloServerPlugin = {
    async requestDidStart() {
      return {
        async willSendResponse({ operation, response }) {
          const failed = response.body.kind === 'single' && (response.body.singleResult.errors?.length ?? 0) > 0;
          metrics.graphqlOperations.inc({ type: operation?.operation ?? 'unknown', outcome: failed ? 'error' : 'ok' });
        },
      };
    },
  };
  return {
    ...metrics,
    apolloPlugin,
    observeUpstreamSubscriptions(count) {
      upstreamCount = count;
    },
  };
}
