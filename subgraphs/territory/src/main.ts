import { runSubgraph } from '@connecte/shared/server';
import { territoryService } from './index.js';

// PORT, else the registry's default port for "territory" (packages/shared/src/registry.ts).
await runSubgraph(territoryService);
