import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  graphqlOperations: Counter<'type' | 'outcome'>;
}

/**
 * Prometheus metrics of one service, in a registry of its own (not prom-client's global
 * one) so that several services in one process — tests, the in-process hub — do not clash.
 * `route` must be a fixed route name, never a raw URL: labels must stay few.
 */
export function createMetrics(service: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Duration of HTTP requests, by method, route and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const graphqlOperations = new Counter({
    name: 'graphql_operations_total',
    help: 'GraphQL operations executed, by operation type and outcome (ok or error)',
    labelNames: ['type', 'outcome'] as const,
    registers: [registry],
  });
  return { registry, httpRequestDuration, graphqlOperations };
}

/** The text exposition of the registry, for `/metrics`. */
export async function renderMetrics(metrics: Pick<Metrics, 'registry'>): Promise<{ contentType: string; body: string }> {
  return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
}
