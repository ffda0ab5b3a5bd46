import { runSubgraph } from '@connecte/shared/server';
import { territorySubgraph } from './index.js';

// PORT, else the registry's default port for "territory" (packages/shared/src/registry.ts).
await runSubgraph(territorySubgraph);
