/**
 * Front-end teams read the schema as their documentation: every type, field, argument,
 * enum value and input field that a subgraph declares carries a description.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { Kind, parse, type DefinitionNode } from 'graphql';
import { SUBGRAPHS } from '@connecte/gateway/subgraphs';
import { ROOT } from '@connecte/testkit';

function undocumented(definition: DefinitionNode): string[] {
  if (!('name' in definition) || !definition.name) return [];
  const type = definition.name.value;
  const missing: string[] = [];
  const isExtension = definition.kind.endsWith('Extension');
  if (!isExtension && !('description' in definition && definition.description)) missing.push(type);
  if ('fields' in definition) {
    for (const field of definition.fields ?? []) {
      if (!field.description) missing.push(`${type}.${field.name.value}`);
      if ('arguments' in field) {
        for (const arg of field.arguments ?? []) {
          if (!arg.description) missing.push(`${type}.${field.name.value}(${arg.name.value})`);
        }
      }
    }
  }
  if (definition.kind === Kind.ENUM_TYPE_DEFINITION) {
    for (const value of definition.values ?? []) if (!value.description) missing.push(`${type}.${value.name.value}`);
  }
  return missing;
}

for (const subgraph of SUBGRAPHS) {
  it(`the ${subgraph.name} subgraph documents every type, field, argument and enum value`, () => {
    const sdl = readFileSync(path.resolve(ROOT, subgraph.schemaPath), 'utf8');
    const missing = parse(sdl).definitions.flatMap(undocumented);
    assert.deepEqual(missing, [], `undocumented in ${subgraph.name}: ${missing.join(', ')}`);
  });
}
