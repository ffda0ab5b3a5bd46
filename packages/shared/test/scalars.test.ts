/**
 * One definition per custom scalar across the supergraph (packages/shared/src/scalars.ts): what
 * each accepts and refuses, and that every registered subgraph declares only shared scalars,
 * described as the shared definition says, resolved by the shared GraphQLScalarType.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GraphQLScalarType, Kind, parse, parseValue, type ScalarTypeDefinitionNode } from 'graphql';
import { loadSubgraphService } from '@connecte/testkit';
import { fromRoot, SUBGRAPHS } from '../src/registry.js';
import { DateScalar, DateTimeScalar, GeoJSONGeometryScalar, JSONScalar, SHARED_SCALARS } from '../src/scalars.js';

/** A literal as the scalar reads it; graphql-js builds its objects without a prototype, hence the copy. */
const literal = (scalar: GraphQLScalarType, text: string) => structuredClone(scalar.parseLiteral(parseValue(text), {}));

describe('Date', () => {
  it('reads and writes calendar days', () => {
    assert.equal(DateScalar.parseValue('2024-02-29'), '2024-02-29');
    assert.equal(literal(DateScalar, '"2026-12-31"'), '2026-12-31');
    assert.equal(DateScalar.serialize(new Date('2026-03-01T00:00:00Z')), '2026-03-01');
  });
  it('refuses a day that does not exist, another format, or a literal that is not a string, naming Date', () => {
    for (const value of ['2021-02-29', '2026-13-01', '01/03/2026', '2026-3-1', 20260301]) {
      assert.throws(() => DateScalar.parseValue(value), /^Date must be a calendar date written YYYY-MM-DD \(got /, String(value));
    }
    assert.throws(() => literal(DateScalar, '20260301'), /Date must be a string written YYYY-MM-DD \(got 20260301\)/);
  });
});

describe('DateTime', () => {
  it('reads an ISO 8601 instant as a Date and writes it in UTC', () => {
    assert.deepEqual(DateTimeScalar.parseValue('2026-03-01T09:30:00+01:00'), new Date('2026-03-01T08:30:00Z'));
    assert.equal(DateTimeScalar.serialize(new Date('2026-03-01T08:30:00Z')), '2026-03-01T08:30:00.000Z');
    assert.equal(DateTimeScalar.serialize('2026-03-01T09:30:00+01:00'), '2026-03-01T08:30:00.000Z');
  });
  it('refuses what is not an instant, in and out', () => {
    assert.throws(() => DateTimeScalar.parseValue('yesterday'), /DateTime must be an ISO 8601 string \(got "yesterday"\)/);
    assert.throws(() => DateTimeScalar.parseValue(1_700_000_000), /DateTime must be an ISO 8601 string/);
    assert.throws(() => literal(DateTimeScalar, '42'), /DateTime must be an ISO 8601 string \(got 42\)/);
    assert.throws(() => DateTimeScalar.serialize(new Date(Number.NaN)), /DateTime cannot represent/);
  });
});

describe('GeoJSONGeometry', () => {
  const polygon = { type: 'Polygon', coordinates: [[[4.35, 48.95], [4.37, 48.95], [4.37, 48.97], [4.35, 48.95]]] };
  it('takes and gives a geometry object of any RFC 7946 type, as a value or a literal', () => {
    assert.deepEqual(GeoJSONGeometryScalar.parseValue(polygon), polygon);
    assert.deepEqual(GeoJSONGeometryScalar.serialize({ type: 'Point', coordinates: [4.36, 48.95] }), { type: 'Point', coordinates: [4.36, 48.95] });
    assert.deepEqual(literal(GeoJSONGeometryScalar, '{ type: "Point", coordinates: [4.36, 48.95] }'), { type: 'Point', coordinates: [4.36, 48.95] });
  });
  it('refuses a string (WKT or JSON text), an array, null, and an object that is no geometry, naming GeoJSONGeometry', () => {
    const cases: [unknown, RegExp][] = [
      ['POLYGON((0 0, 1 1, 1 0, 0 0))', /GeoJSONGeometry must be a GeoJSON geometry object, not a string/],
      [JSON.stringify(polygon), /not a string/],
      [[4.36, 48.95], /not an array/],
      [null, /not a null/],
      [{ coordinates: [4.36, 48.95] }, /must have a `type` among Point, MultiPoint, .*GeometryCollection \(got null\)/],
      [{ type: 'Feature', geometry: polygon }, /\(got "Feature"\)/],
    ];
    for (const [value, message] of cases) assert.throws(() => GeoJSONGeometryScalar.parseValue(value), message, JSON.stringify(value));
    assert.throws(() => literal(GeoJSONGeometryScalar, '"POINT(4 48)"'), /GeoJSONGeometry must be a GeoJSON geometry object, not "POINT\(4 48\)"/);
    assert.throws(() => literal(GeoJSONGeometryScalar, '{ type: "Circle" }'), /\(got "Circle"\)/);
    assert.throws(() => GeoJSONGeometryScalar.serialize('{"type":"Point"}'), /not a string/, 'a geometry left as text is a bug, not an answer');
  });
});

it('JSON passes any value through, literals included', () => {
  assert.deepEqual(JSONScalar.parseValue({ a: [1, 'b', null] }), { a: [1, 'b', null] });
  assert.deepEqual(literal(JSONScalar, '{ a: [1, "b", null, true] }'), { a: [1, 'b', null, true] });
});

for (const entry of SUBGRAPHS) {
  describe(`the ${entry.name} subgraph`, () => {
    const declared = parse(readFileSync(fromRoot(entry.schema), 'utf8')).definitions.filter(
      (definition): definition is ScalarTypeDefinitionNode => definition.kind === Kind.SCALAR_TYPE_DEFINITION,
    );

    it('declares only shared scalars, each with the shared description (one meaning across the supergraph)', () => {
      for (const scalar of declared) {
        const shared = SHARED_SCALARS[scalar.name.value];
        assert.ok(shared, `scalar ${scalar.name.value} is not in packages/shared/src/scalars.ts: add it there to use it`);
        assert.equal(scalar.description?.value, shared.description, `the description of ${scalar.name.value} in ${entry.schema}`);
      }
    });

    it('resolves each scalar it declares with the shared GraphQLScalarType', async () => {
      const service = await loadSubgraphService(entry);
      for (const scalar of declared) {
        assert.equal((service.resolvers as Record<string, unknown>)[scalar.name.value], SHARED_SCALARS[scalar.name.value], scalar.name.value);
      }
    });
  });
}
