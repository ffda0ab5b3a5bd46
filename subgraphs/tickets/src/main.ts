import { runSubgraph } from '@connecte/shared/server';
import { ticketsSubgraph } from './index.js';

// PORT, else the registry's default port for "tickets" (packages/shared/src/registry.ts).
await runSubgraph(ticketsSubgraph);
