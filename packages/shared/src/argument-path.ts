/**
 * A literal argument value that does not fit its type is a validation error in graphql-js
 * ("Expected value of type "Date", found …") that locates the value in the text but names no
 * argument. Clients (and the conventions: errors name the field at fault) need the argument's
 * path, e.g. `input.installedOn` or `filter.bbox.2`: it is found by walking the document to the
 * value node the error points at.
 */
import {
  GraphQLError,
  Kind,
  parse,
  type ArgumentNode,
  type DocumentNode,
  type GraphQLFormattedError,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';

/** The path of the argument value that starts at `offset` in `document`, or null. */
export function argumentPathAt(document: DocumentNode, offset: number): string | null {
  const inValue = (value: ValueNode, path: string): string | null => {
    if (value.loc?.start === offset) return path;
    if (value.kind === Kind.OBJECT) {
      for (const field of value.fields) {
        const found = inValue(field.value, `${path}.${field.name.value}`);
        if (found) return found;
      }
    } else if (value.kind === Kind.LIST) {
      for (const [index, item] of value.values.entries()) {
        const found = inValue(item, `${path}.${index}`);
        if (found) return found;
      }
    }
    return null;
  };
  const inArguments = (args: readonly ArgumentNode[] | undefined): string | null => {
    for (const argument of args ?? []) {
      const found = inValue(argument.value, argument.name.value);
      if (found) return found;
    }
    return null;
  };
  const inSelections = (selectionSet: SelectionSetNode | undefined): string | null => {
    for (const selection of selectionSet?.selections ?? []) {
      const found =
        inArguments(selection.directives?.flatMap((d) => d.arguments ?? [])) ??
        (selection.kind === Kind.FIELD ? inArguments(selection.arguments) : null) ??
        (selection.kind === Kind.FRAGMENT_SPREAD ? null : inSelections(selection.selectionSet));
      if (found) return found;
    }
    return null;
  };
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION && definition.kind !== Kind.FRAGMENT_DEFINITION) continue;
    const found = inArguments(definition.directives?.flatMap((d) => d.arguments ?? [])) ?? inSelections(definition.selectionSet);
    if (found) return found;
  }
  return null;
}

const VALUE_KINDS = new Set<string>([Kind.INT, Kind.FLOAT, Kind.STRING, Kind.BOOLEAN, Kind.NULL, Kind.ENUM, Kind.LIST, Kind.OBJECT]);

/**
 * A validation error about a literal argument value, given `field` (and its message prefixed
 * with it, as every BAD_USER_INPUT message is); any other error is returned as it is.
 */
export function namingTheArgument(formatted: GraphQLFormattedError, original: unknown): GraphQLFormattedError {
  if (formatted.extensions?.code !== 'GRAPHQL_VALIDATION_FAILED' || formatted.extensions.field) return formatted;
  const error = original instanceof GraphQLError ? original : null;
  const node = error?.nodes?.[0];
  const body = error?.source?.body;
  if (!node?.loc || body === undefined || !VALUE_KINDS.has(node.kind)) return formatted;
  let path: string | null;
  try {
    path = argumentPathAt(parse(body), node.loc.start);
  } catch {
    return formatted;
  }
  if (!path) return formatted;
  return { ...formatted, message: `${path}: ${formatted.message}`, extensions: { ...formatted.extensions, field: path } };
}
