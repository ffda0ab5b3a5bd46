import { runSubgraph } from '@connecte/shared/server';
import { equipmentSubgraph } from './index.js';

// PORT, else the registry's default port for "equipment" (packages/shared/src/registry.ts).
await runSubgraph(equipmentSubgraph);
