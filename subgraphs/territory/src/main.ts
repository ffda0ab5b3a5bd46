import { runSubgraph } from '@connecte/shared/server';
import { territoryService } from './index.js';

await runSubgraph(territoryService, 4001);
