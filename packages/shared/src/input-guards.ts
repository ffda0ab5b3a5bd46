/**
 * Values no resolver of the hub can use, refused for every argument of every subgraph before
 * anything runs: a string holding U+0000 (PostgreSQL cannot store it in text or jsonb: 22021 /
 * 22P05), a number that is not finite (a JSON or GraphQL `1e309` is Infinity, which graphql-js
 * accepts as a Float literal and the query planner then chokes on), and values nested deeper
 * than any input of the schema needs. One walk over the operation's arguments, literal or from
 * variables (raw JSON, so JSON scalars and `\u0000` escapes are seen as sent), names the
 * argument at fault the way resolvers do (`filter.nameContains`, `input.details.lampType`).
 */
import {
  getOperationAST,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
  type VariableDefinitionNode,
  type ASTNode,
  type GraphQLError,
} from 'graphql';
import { rejectedInput } from './errors.js';

/** GeoJSON MultiPolygon coordinates nest 5 levels under their argument; nothing legitimate comes close. */
export const MAX_INPUT_DEPTH = 32;

type Frame =
  | { literal: ValueNode; path: string; depth: number }
  | { raw: unknown; path: string; depth: number; variable: string; node: ASTNode };

/**
 * An unusable value among the arguments of the operation `operationName` selects, or undefined.
 * An operation that cannot be identified is left to the server's own error.
 */
export function findInputProblem(
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Readonly<Record<string, unknown>> | null | undefined,
): GraphQLError | undefined {
  const operation = getOperationAST(document, operationName);
  if (!operation) return undefined;
  const stack: Frame[] = [];
  const definitions = new Map<string, VariableDefinitionNode>(operation.variableDefinitions?.map((d) => [d.variable.name.value, d]));
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  for (const { name, value } of argumentsOf(operation, fragments)) stack.push({ literal: value, path: name, depth: 0 });

  while (stack.length > 0) {
    const frame = stack.pop()!;
    if (frame.depth > MAX_INPUT_DEPTH) {
      // Named down to the innermost input field, not the 32 list indexes below it.
      const field = frame.path.replace(/(\.\d+)+$/, '');
      return rejectedInput(field, `nests deeper than ${MAX_INPUT_DEPTH} levels`, 'literal' in frame ? frame.literal : frame.node);
    }
    const problem = 'literal' in frame ? checkLiteral(frame, stack, definitions, variables) : checkRaw(frame, stack);
    if (problem) return problem;
  }
  return undefined;
}

/** Every argument (fields and directives) the operation reaches, fragments followed once each. */
function* argumentsOf(operation: OperationDefinitionNode, fragments: Map<string, FragmentDefinitionNode>) {
  const seen = new Set<string>();
  const pending: { directives?: readonly { arguments?: readonly { name: { value: string }; value: ValueNode }[] }[]; selectionSet?: SelectionSetNode }[] = [operation];
  while (pending.length > 0) {
    const node = pending.pop()!;
    for (const directive of node.directives ?? []) for (const argument of directive.arguments ?? []) yield { name: argument.name.value, value: argument.value };
    for (const selection of node.selectionSet?.selections ?? []) {
      if (selection.kind === Kind.FIELD) {
        for (const argument of selection.arguments ?? []) yield { name: argument.name.value, value: argument.value };
        pending.push(selection);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        pending.push(selection);
      } else {
        pending.push({ directives: selection.directives });
        const name = selection.name.value;
        const fragment = fragments.get(name);
        if (fragment && !seen.has(name)) {
          seen.add(name);
          pending.push(fragment);
        }
      }
    }
  }
}

function checkLiteral(
  { literal, path, depth }: Extract<Frame, { literal: ValueNode }>,
  stack: Frame[],
  definitions: Map<string, VariableDefinitionNode>,
  variables: Readonly<Record<string, unknown>> | null | undefined,
): GraphQLError | undefined {
  switch (literal.kind) {
    case Kind.STRING:
      return literal.value.includes('\0') ? rejectedInput(path, NUL_REASON, literal) : undefined;
    case Kind.INT:
    case Kind.FLOAT:
      return Number.isFinite(Number(literal.value)) ? undefined : rejectedInput(path, `must be a finite number (got ${literal.value.slice(0, 40)})`, literal);
    case Kind.LIST:
      literal.values.forEach((value, index) => stack.push({ literal: value, path: `${path}.${index}`, depth: depth + 1 }));
      return undefined;
    case Kind.OBJECT:
      for (const field of literal.fields) stack.push({ literal: field.value, path: `${path}.${field.name.value}`, depth: depth + 1 });
      return undefined;
    case Kind.VARIABLE: {
      const name = literal.name.value;
      if (variables && Object.hasOwn(variables, name)) {
        stack.push({ raw: variables[name], path, depth, variable: name, node: literal });
      } else {
        const fallback = definitions.get(name)?.defaultValue;
        if (fallback) stack.push({ literal: fallback, path, depth });
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

function checkRaw({ raw, path, depth, variable, node }: Extract<Frame, { raw: unknown }>, stack: Frame[]): GraphQLError | undefined {
  const from = ` (variable $${variable})`;
  if (typeof raw === 'string') return raw.includes('\0') ? rejectedInput(path, NUL_REASON + from, node) : undefined;
  if (typeof raw === 'number') return Number.isFinite(raw) ? undefined : rejectedInput(path, `must be a finite number (got ${raw})${from}`, node);
  if (Array.isArray(raw)) {
    raw.forEach((value, index) => stack.push({ raw: value, path: `${path}.${index}`, depth: depth + 1, variable, node }));
  } else if (typeof raw === 'object' && raw !== null) {
    for (const [key, value] of Object.entries(raw)) {
      if (key.includes('\0')) return rejectedInput(path, `has a key containing the NUL character (U+0000)${from}`, node);
      stack.push({ raw: value, path: `${path}.${key}`, depth: depth + 1, variable, node });
    }
  }
  return undefined;
}

const NUL_REASON = 'must not contain the NUL character (U+0000)';
