/**
 * How much a GraphQL operation may ask for, measured before anything runs: tokens (before
 * parsing), then depth, aliases, root fields and cost on the parsed, validated document.
 * One implementation for the gateway and every subgraph, over HTTP (an Apollo plugin) and
 * graphql-ws (`admitOperation`).
 */
import type { ApolloServerPlugin } from '@apollo/server';
import {
  getNamedType,
  getNullableType,
  getOperationAST,
  GraphQLError,
  isInterfaceType,
  isListType,
  isObjectType,
  Kind,
  Lexer,
  NoSchemaIntrospectionCustomRule,
  Source,
  TokenKind,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type Token,
  type ValueNode,
} from 'graphql';
import type { Config } from './config.js';

/**
 * What a list without `first` counts as. The conventions paginate every list that can grow;
 * the others are short enumerations of the territory (the 4 collectivities, a collectivity's
 * communes, the 6 service categories, the fields one change touched). Counting them as a full
 * page of 50 made a plain "collectivities → communes → districts" query cost 800,000; nesting
 * them still multiplies, so a cycle (collectivity → communes → collectivity → …) is refused.
 */
export const UNPAGINATED_LIST_SIZE = 10;
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './pagination.js';
import type { PersistedOperations } from './persisted-operations.js';

export const QUERY_TOO_COMPLEX = 'QUERY_TOO_COMPLEX';

export interface QueryLimits {
  maxTokens: number;
  maxDepth: number;
  maxAliases: number;
  maxRootFields: number;
  maxCost: number;
}

export function queryLimitsFrom(config: Pick<Config, 'MAX_QUERY_TOKENS' | 'MAX_QUERY_DEPTH' | 'MAX_QUERY_ALIASES' | 'MAX_QUERY_ROOT_FIELDS' | 'MAX_QUERY_COST'>): QueryLimits {
  return {
    maxTokens: config.MAX_QUERY_TOKENS,
    maxDepth: config.MAX_QUERY_DEPTH,
    maxAliases: config.MAX_QUERY_ALIASES,
    maxRootFields: config.MAX_QUERY_ROOT_FIELDS,
    maxCost: config.MAX_QUERY_COST,
  };
}

/** What a limit is called in `extensions.limit`, and the variable that sets it. */
const LIMITS = {
  tokens: { variable: 'MAX_QUERY_TOKENS', what: 'lexical token count' },
  depth: { variable: 'MAX_QUERY_DEPTH', what: 'depth' },
  aliases: { variable: 'MAX_QUERY_ALIASES', what: 'alias count' },
  rootFields: { variable: 'MAX_QUERY_ROOT_FIELDS', what: 'root field count' },
  cost: { variable: 'MAX_QUERY_COST', what: 'cost' },
} as const;
export type LimitName = keyof typeof LIMITS;

/** The refusal every limit gives: HTTP 400, one code, the limit's name, its maximum and what was measured. */
export function queryTooComplex(limit: LimitName, max: number, measured: number): GraphQLError {
  const { variable, what } = LIMITS[limit];
  const shown = Number.isSafeInteger(measured) ? String(measured) : measured.toExponential(2);
  return new GraphQLError(`Query refused: its ${what}, ${shown}, exceeds the limit of ${max} (${variable})`, {
    extensions: { code: QUERY_TOO_COMPLEX, limit, max, measured, http: { status: 400 } },
  });
}

/**
 * Lexical tokens of `source` (comments excluded, as graphql-js's `maxTokens` counts them),
 * without building an AST. Each token's link to the previous one is dropped as it goes, so
 * counting a megabyte of source keeps one token alive rather than all of them.
 */
export function countTokens(source: string): number {
  const lexer = new Lexer(new Source(source));
  let count = 0;
  while (lexer.advance().kind !== TokenKind.EOF) {
    count++;
    (lexer.token as { prev: Token | null }).prev = null;
  }
  return count;
}

/** The token guard, for any text a client sends as a query; a syntax error is left to the parser. */
export function tokensRefusal(source: string, limits: Pick<QueryLimits, 'maxTokens'>): GraphQLError | null {
  let tokens: number;
  try {
    tokens = countTokens(source);
  } catch {
    return null;
  }
  return tokens > limits.maxTokens ? queryTooComplex('tokens', limits.maxTokens, tokens) : null;
}

export interface OperationMeasures {
  /** Deepest field nesting; root fields are at depth 1. */
  depth: number;
  /** Aliased fields, fragments expanded. */
  aliases: number;
  /** Fields selected on the root type, fragments expanded. */
  rootFields: number;
  /**
   * Every field costs 1 (`__typename` 0); a list or connection multiplies its selection by its
   * page size. Introspection costs 0: it is answered from the schema in memory, and graphql-js'
   * own validation (MaxIntrospectionDepthRule) refuses the nested introspection lists that would
   * make its answer grow exponentially.
   */
  cost: number;
}

interface Measure {
  depth: number;
  aliases: number;
  fields: number;
  cost: number;
}

const EMPTY: Measure = { depth: 0, aliases: 0, fields: 0, cost: 0 };

/** Measures the operation `operationName` of a validated document; `variables` resolve `first: $n`. */
export function measureOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> | null | undefined,
): OperationMeasures {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const defaults = new Map<string, ValueNode>();
  for (const definition of operation.variableDefinitions ?? []) {
    if (definition.defaultValue) defaults.set(definition.variable.name.value, definition.defaultValue);
  }
  const valueOf = (node: ValueNode): unknown => {
    if (node.kind === Kind.VARIABLE) {
      const name = node.name.value;
      if (variables && name in variables) return variables[name];
      const fallback = defaults.get(name);
      return fallback ? valueOf(fallback) : undefined;
    }
    if (node.kind === Kind.INT) return Number(node.value);
    if (node.kind === Kind.NULL) return null;
    if (node.kind === Kind.LIST) return node.values;
    return node;
  };

  /** How many times a field's selection is answered: its page, or 1 for a single object. */
  const multiplier = (field: FieldNode, definition: GraphQLField<unknown, unknown>, parent: GraphQLNamedType): number => {
    const type = getNullableType(definition.type);
    const named = getNamedType(type);
    if (!isListType(type) && !named.name.endsWith('Connection')) return 1;
    // The gateway's entity fetches: the selection is answered once per representation. Counted
    // (not exempted), so that a caller who reaches a subgraph directly cannot use `_entities` to
    // bypass the cost; and a legitimate plan passes, because the gateway admitted the client's
    // operation under the same MAX_QUERY_COST, in which these entities were already counted by
    // the pages that lead to them (and `__typename`, which the planner adds everywhere, is free).
    if (field.name.value === '_entities') {
      const representations = field.arguments?.find((a) => a.name.value === 'representations');
      const value = representations ? valueOf(representations.value) : undefined;
      return Array.isArray(value) ? value.length : 1;
    }
    if (definition.args.some((a) => a.name === 'first')) {
      const first = field.arguments?.find((a) => a.name.value === 'first');
      return pageSizeOf(first ? valueOf(first.value) : null);
    }
    // `edges` of a connection: its page was counted on the connection field.
    if (parent.name.endsWith('Connection')) return 1;
    return UNPAGINATED_LIST_SIZE;
  };

  const fragmentMeasures = new Map<string, Measure>();
  const visiting = new Set<string>();

  const measureSelections = (selectionSet: SelectionSetNode, parent: GraphQLNamedType | undefined, inIntrospection: boolean): Measure => {
    const total: Measure = { depth: 0, aliases: 0, fields: 0, cost: 0 };
    const add = (part: Measure) => {
      total.depth = Math.max(total.depth, part.depth);
      total.aliases += part.aliases;
      total.fields += part.fields;
      total.cost += part.cost;
    };
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        add(measureField(selection, parent, inIntrospection));
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        add(measureSelections(selection.selectionSet, type ?? undefined, inIntrospection));
      } else {
        add(measureFragment(selection.name.value, inIntrospection));
      }
    }
    return total;
  };

  const measureFragment = (name: string, inIntrospection: boolean): Measure => {
    const key = `${inIntrospection}:${name}`;
    const known = fragmentMeasures.get(key);
    if (known) return known;
    const fragment = fragments.get(name);
    // Unknown or cyclic spreads fail validation; measuring them as nothing keeps this total.
    if (!fragment || visiting.has(key)) return EMPTY;
    visiting.add(key);
    const measure = measureSelections(fragment.selectionSet, schema.getType(fragment.typeCondition.name.value) ?? undefined, inIntrospection);
    visiting.delete(key);
    fragmentMeasures.set(key, measure);
    return measure;
  };

  const measureField = (field: FieldNode, parent: GraphQLNamedType | undefined, inIntrospection: boolean): Measure => {
    const name = field.name.value;
    const aliased = field.alias ? 1 : 0;
    if (name === '__typename') return { depth: 1, aliases: aliased, fields: 1, cost: 0 };
    const definition =
      name === '__schema' || name === '__type' ? introspectionField(schema, name)
      : parent && (isObjectType(parent) || isInterfaceType(parent)) ? parent.getFields()[name]
      : undefined;
    const introspective = inIntrospection || name === '__schema' || name === '__type';
    const children = field.selectionSet && definition ? measureSelections(field.selectionSet, getNamedType(definition.type), introspective) : EMPTY;
    const times = !definition || introspective || !parent ? 1 : multiplier(field, definition, parent);
    return {
      depth: 1 + children.depth,
      aliases: aliased + children.aliases,
      fields: 1,
      cost: introspective ? 0 : 1 + times * children.cost,
    };
  };

  const root = schema.getRootType(operation.operation);
  const measure = measureSelections(operation.selectionSet, root ?? undefined, false);
  return {
    depth: measure.depth,
    aliases: measure.aliases,
    rootFields: measure.fields,
    cost: measure.cost,
  };
}

/** `first` as the resolvers read it: default 50, at most 1000; a value they would refuse counts as the most. */
function pageSizeOf(first: unknown): number {
  if (first === null || first === undefined) return DEFAULT_PAGE_SIZE;
  if (typeof first !== 'number' || !Number.isInteger(first) || first < 0) return MAX_PAGE_SIZE;
  return Math.min(first, MAX_PAGE_SIZE);
}

function introspectionField(schema: GraphQLSchema, name: '__schema' | '__type'): GraphQLField<unknown, unknown> | undefined {
  // graphql-js keeps these meta fields off the Query type; their types are the introspection types.
  const type = schema.getType(name === '__schema' ? '__Schema' : '__Type');
  return type ? ({ name, type, args: [] } as unknown as GraphQLField<unknown, unknown>) : undefined;
}

/** The first limit the measures break, as the refusal to send, or null. */
export function limitRefusal(measures: OperationMeasures, limits: QueryLimits): GraphQLError | null {
  if (measures.depth > limits.maxDepth) return queryTooComplex('depth', limits.maxDepth, measures.depth);
  if (measures.aliases > limits.maxAliases) return queryTooComplex('aliases', limits.maxAliases, measures.aliases);
  if (measures.rootFields > limits.maxRootFields) return queryTooComplex('rootFields', limits.maxRootFields, measures.rootFields);
  if (measures.cost > limits.maxCost) return queryTooComplex('cost', limits.maxCost, measures.cost);
  return null;
}

/**
 * Over HTTP: Apollo has parsed (the token guard ran before it, on the request's text) and
 * validated the document; this refuses the operation before it executes, i.e. before a
 * subgraph resolver runs or, at the gateway, before the query plan is built or fetched.
 */
export function requestLimitsPlugin<C extends object>(limits: QueryLimits): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ schema, document, operation, request }) {
          if (!operation) return;
          const refusal = limitRefusal(measureOperation(schema, document, operation, request.variables), limits);
          if (refusal) throw refusal;
        },
      };
    },
  };
}

/** What graphql-ws hands `onSubscribe`. */
export interface OperationPayload {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  extensions?: Record<string, unknown> | null;
}

export interface SocketAdmission {
  limits: QueryLimits;
  introspection: boolean;
  /** At the gateway: the allow-list applies over graphql-ws too. */
  persisted?: PersistedOperations;
}

/**
 * Over graphql-ws: the allow-list and the token guard before `prepare` (which parses and
 * validates, see graphql-over-http's socketOperation), then introspection when it is off, then
 * the limits.
 */
export function admitSocketOperation(
  payload: OperationPayload,
  options: SocketAdmission,
  prepare: (payload: OperationPayload) => ExecutionArgs | GraphQLError[],
): ExecutionArgs | GraphQLError[] {
  const screening = options.persisted?.screen({ query: payload.query, extensions: payload.extensions });
  if (screening?.refusal) return screening.refusal.body.errors.map(({ message, extensions }) => new GraphQLError(message, { extensions }));
  const tooManyTokens = tokensRefusal(payload.query, options.limits);
  if (tooManyTokens) return [tooManyTokens];
  const args = prepare(payload);
  if (Array.isArray(args)) return args;
  if (!options.introspection) {
    const errors = validate(args.schema, args.document, [NoSchemaIntrospectionCustomRule]);
    if (errors.length > 0) {
      return errors.map((e) => new GraphQLError(e.message, { nodes: e.nodes, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }));
    }
  }
  const operation = getOperationAST(args.document, args.operationName);
  const refusal = operation && limitRefusal(measureOperation(args.schema, args.document, operation, args.variableValues), options.limits);
  return refusal ? [refusal] : args;
}
