import { loadConfigOrExit } from '@connecte/shared/config';
import { createLogger } from '@connecte/shared/log';
import { exitOnStartupError, installShutdownHandlers, StartupError, startupProblem } from '@connecte/shared/server';
import { DEFAULT_GATEWAY_PORT, startGateway } from './server.js';

const config = loadConfigOrExit();
const log = createLogger('gateway', config);
const port = config.PORT ?? DEFAULT_GATEWAY_PORT;
const gateway = await startGateway({ config, port }).catch((error: NodeJS.ErrnoException) =>
  exitOnStartupError(new StartupError('gateway', startupProblem(error, config.HOST, port))),
);
log.info(
  { url: gateway.url, subgraphs: gateway.subgraphUrls, health: `${gateway.origin}/healthz`, ready: `${gateway.origin}/readyz`, metrics: `${gateway.origin}/metrics` },
  `gateway ready at ${gateway.url} (HTTP and graphql-ws)`,
);
installShutdownHandlers(() => gateway.close(), log);
