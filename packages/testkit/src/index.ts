/**
 * The one test kit: every test of the hub takes its databases, configuration, tokens, GraphQL,
 * services, MQTT and graphql-ws clients from here. Test-only: production code never imports it.
 */
export { ADMIN_URL, createTestDatabase, dropTestDatabases, ROOT, TEST_DB_PREFIX, testDatabaseName, type TestDatabase } from './databases.js';
export { testConfig, tokenFor } from './config.js';
export { gql, type GqlOptions, type GraphQLError, type GraphQLResponse } from './graphql.js';
export {
  loadSubgraphService,
  startHub,
  startService,
  startSubgraphs,
  subgraphRequests,
  urlsOf,
  type Hub,
  type StartHubOptions,
  type StartServiceOptions,
  type TestService,
} from './services.js';
export { BROKER_CONFIG, connectTestBroker, startTestBroker, TEST_MQTT_URL, testBrokerConfig, type Owner, type TestBroker, type TestClientOptions } from './mqtt.js';
export { subscriptions, type Subscription } from './subscriptions.js';
export { RawClient, type Message } from './ws-client.js';
export { PG_BIN, startThrowawayCluster, type ThrowawayCluster } from './throwaway-cluster.js';
export { freePort } from './ports.js';
