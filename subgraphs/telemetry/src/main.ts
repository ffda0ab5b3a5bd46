import { runSubgraph } from '@connecte/shared/server';
import { telemetrySubgraph } from './index.js';

// PORT, else the registry's default port for "telemetry" (packages/shared/src/registry.ts).
await runSubgraph(telemetrySubgraph);
