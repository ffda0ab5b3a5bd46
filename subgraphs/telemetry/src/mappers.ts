// What the resolvers of each GraphQL type receive and return instead of its GraphQL shape
// (`<Type>Mapper`; scripts/codegen.ts reads this file). One line per type, beside its area's values.
export type EquipmentMapper = { id: string };
// readings (reading-service.ts): a page whose totalCount is counted only when selected.
export type ReadingConnectionMapper = import('./reading-service.js').ReadingConnectionValue;
// dead letters (dead-letters.ts): the stored row; the page counts its total only when selected.
export type DeadLetterMapper = import('./dead-letters.js').DeadLetterValue;
export type DeadLetterConnectionMapper = import('@connecte/shared/pagination').Connection<import('./dead-letters.js').DeadLetterValue>;
// alarms (alarm-store.ts, alarm-rules.ts): the stored rows; a page counts its total only when selected.
export type AlarmMapper = import('./alarm-store.js').AlarmRow;
export type AlarmConnectionMapper = import('@connecte/shared/pagination').Connection<import('./alarm-store.js').AlarmRow>;
export type AlarmChangeMapper = import('./alarm-store.js').AlarmChangeValue;
export type AlarmRuleMapper = import('./alarm-rules.js').AlarmRuleRow;
// credentials (credential-service.ts): the stored rows, never their secret hash.
export type DeviceCredentialMapper = import('./credential-service.js').DeviceCredentialRow;
export type IngestKeyMapper = import('./credential-service.js').IngestKeyRow;
