// The custom scalars of the supergraph, one definition each: a subgraph declares the ones it
// uses in its SDL with the description below (packages/shared/test/scalars.test.ts checks every
// registered subgraph) and puts the GraphQLScalarType in its resolvers, so a scalar means the
// same thing whichever subgraph a field comes from.
import { GraphQLError, GraphQLScalarType, Kind, print, valueFromASTUntyped, type ValueNode } from 'graphql';

/** The geometry types of RFC 7946 §3.1. */
export const GEOJSON_GEOMETRY_TYPES = [
  'Point',
  'MultiPoint',
  'LineString',
  'MultiLineString',
  'Polygon',
  'MultiPolygon',
  'GeometryCollection',
] as const;

/** A GeoJSON geometry object; the domain checks its type and coordinates further when it takes one as input. */
export interface GeoJSONGeometry {
  type: (typeof GEOJSON_GEOMETRY_TYPES)[number];
  [member: string]: unknown;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * A literal refused by a scalar keeps its place in the document: graphql-js reports a GraphQLError
 * thrown by `parseLiteral` as it is, so without `nodes` the error would have no location and the
 * server could not name the argument at fault (argument-path.ts).
 */
function atLiteral<T>(ast: ValueNode, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new GraphQLError((error as Error).message, { nodes: ast });
  }
}

function parseDate(value: unknown): string {
  const match = typeof value === 'string' ? DATE.exec(value) : null;
  if (match) {
    const [, y, m, d] = match.map(Number);
    const date = new Date(Date.UTC(y, m - 1, d));
    if (date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d) return value as string;
  }
  throw new GraphQLError(`Date must be a calendar date written YYYY-MM-DD (got ${JSON.stringify(value)})`);
}

/** PostgreSQL `date` values arrive as midnight UTC: the ISO day is the stored day. */
export const DateScalar = new GraphQLScalarType<string, string>({
  name: 'Date',
  description: 'A calendar date, ISO 8601 `YYYY-MM-DD` (Europe/Paris calendar day).',
  serialize: (value) => (value instanceof Date ? value.toISOString().slice(0, 10) : parseDate(value)),
  parseValue: parseDate,
  parseLiteral: (ast) =>
    atLiteral(ast, () => {
      if (ast.kind !== Kind.STRING) throw new GraphQLError(`Date must be a string written YYYY-MM-DD (got ${print(ast).slice(0, 40)})`);
      return parseDate(ast.value);
    }),
});

const DATE_TIME_INPUT = 'DateTime must be an ISO 8601 string';

export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An instant, ISO 8601 with time zone (e.g. `2026-03-01T08:30:00.000Z`).',
  serialize: (value) => {
    if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString();
    if (typeof value === 'string' && !Number.isNaN(Date.parse(value))) return new Date(value).toISOString();
    throw new GraphQLError(`DateTime cannot represent ${JSON.stringify(value)}`);
  },
  parseValue: (value) => {
    if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) throw new GraphQLError(`${DATE_TIME_INPUT} (got ${JSON.stringify(value)})`);
    return new Date(value);
  },
  parseLiteral: (ast) =>
    atLiteral(ast, () => {
      if (ast.kind !== Kind.STRING || Number.isNaN(Date.parse(ast.value))) throw new GraphQLError(`${DATE_TIME_INPUT} (got ${print(ast).slice(0, 40)})`);
      return new Date(ast.value);
    }),
});

export const JSONScalar = new GraphQLScalarType<unknown, unknown>({
  name: 'JSON',
  description: 'Any JSON value (object, array, string, number, boolean or null).',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast: ValueNode, variables?: { [key: string]: unknown } | null) => valueFromASTUntyped(ast, variables),
});

function parseGeometry(value: unknown): GeoJSONGeometry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GraphQLError(`GeoJSONGeometry must be a GeoJSON geometry object, not ${Array.isArray(value) ? 'an array' : `a ${value === null ? 'null' : typeof value}`}`);
  }
  const type = (value as { type?: unknown }).type;
  if (!GEOJSON_GEOMETRY_TYPES.includes(type as GeoJSONGeometry['type'])) {
    throw new GraphQLError(`GeoJSONGeometry must have a \`type\` among ${GEOJSON_GEOMETRY_TYPES.join(', ')} (got ${JSON.stringify(type ?? null)})`);
  }
  return value as GeoJSONGeometry;
}

/** Written as PostGIS gives it (`ST_AsGeoJSON`), or as the domain builds it; read as a JSON object, never a string. */
export const GeoJSONGeometryScalar = new GraphQLScalarType<GeoJSONGeometry, GeoJSONGeometry>({
  name: 'GeoJSONGeometry',
  description:
    'A GeoJSON geometry object (RFC 7946) in WGS84 longitude/latitude (EPSG:4326), given as a JSON object (not a string), for example\n' +
    '`{ "type": "Point", "coordinates": [4.363, 48.9565] }`. Coordinates read from the hub carry 6 decimals (about 10 cm).',
  serialize: parseGeometry,
  parseValue: parseGeometry,
  parseLiteral: (ast, variables) =>
    atLiteral(ast, () => {
      if (ast.kind !== Kind.OBJECT) throw new GraphQLError(`GeoJSONGeometry must be a GeoJSON geometry object, not ${print(ast).slice(0, 40)}`);
      return parseGeometry(valueFromASTUntyped(ast, variables));
    }),
});

/** Every shared scalar by name: what a subgraph may declare, and the resolver it must use. */
export const SHARED_SCALARS: Readonly<Record<string, GraphQLScalarType>> = Object.freeze({
  Date: DateScalar,
  DateTime: DateTimeScalar,
  JSON: JSONScalar,
  GeoJSONGeometry: GeoJSONGeometryScalar,
});
