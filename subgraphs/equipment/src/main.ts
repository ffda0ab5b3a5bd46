import { runSubgraph } from '@connecte/shared/server';
import { equipmentService } from './index.js';

// PORT, else the registry's default port for "equipment" (packages/shared/src/registry.ts).
await runSubgraph(equipmentService);
