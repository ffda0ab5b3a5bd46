import { runSubgraph } from '@connecte/shared/server';
import { mobilitySubgraph } from './index.js';

// PORT, else the registry's default port for "mobility" (packages/shared/src/registry.ts).
await runSubgraph(mobilitySubgraph);
