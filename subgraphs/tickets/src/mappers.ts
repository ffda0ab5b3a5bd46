// What the resolvers of each GraphQL type receive and return instead of its GraphQL shape
// (`<Type>Mapper`; scripts/codegen.ts reads this file). One line per type, beside its area's values.
export type EquipmentMapper = { id: string };
// tickets (types.ts): the stored rows.
export type TicketMapper = import('./types.js').TicketRow;
export type TicketCategoryMapper = import('./types.js').CategoryRow;
export type TicketConnectionMapper = import('@connecte/shared/pagination').Connection<import('./types.js').TicketRow>;
// interventions (types.ts): the stored rows.
export type InterventionMapper = import('./types.js').InterventionRow;
export type InterventionConnectionMapper = import('@connecte/shared/pagination').Connection<import('./types.js').InterventionRow>;
// open311 (open311-admin.ts): the stored rows (never a client key's hash).
export type Open311ClientMapper = import('./open311-admin.js').Open311ClientRow;
export type Open311PublicKeyMapper = import('./open311-admin.js').Open311PublicKeyRow;
// photos (photo-store.ts): the rows, without their bytes.
export type TicketPhotoMapper = import('./photo-store.js').PhotoRow;
