import { dropTestDatabases } from '@connecte/testkit/databases';

if (process.argv[2] === 'drop') {
  const dropped = await dropTestDatabases();
  if (dropped.length) console.log(`[test] dropped ${dropped.length} test database(s)`);
}
