import { runSubgraph } from '@connecte/shared/server';
import { equipmentService } from './index.js';

/** Default port of the equipment subgraph (README lists one per subgraph); PORT overrides it. */
const DEFAULT_PORT = 4002;

await runSubgraph(equipmentService, DEFAULT_PORT);
