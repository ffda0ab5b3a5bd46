import { loadConfigOrExit } from '@connecte/shared/config';
import { installShutdownHandlers, startSubgraph } from '@connecte/shared/server';
import { territoryService } from './index.js';

const DEFAULT_PORT = 4001;

const config = loadConfigOrExit();
const service = await startSubgraph(territoryService, { config, port: config.PORT ?? DEFAULT_PORT });
installShutdownHandlers(() => service.close());
