// Everything in one import; services that care about start-up time import the subpaths
// (`@connecte/shared/auth`, ...) so that a script does not load Apollo.
export * from './config.js';
export * from './errors.js';
export * from './pagination.js';
export * from './db.js';
export * from './auth.js';
export * from './log.js';
export * from './metrics.js';
export * from './events.js';
export * from './server.js';
