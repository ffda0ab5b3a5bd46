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

/** The path of the first argument value in `document` that `matches`, or null. */
function argumentPathWhere(document: DocumentNode, matches: (value: ValueNode) => boolean): string | null {
  const inValue = (value: ValueNode, path: string): string | null => {
    if (matches(value)) return path;
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

/** The path of the argument value that starts at `offset` in `document`, or null. */
export const argumentPathAt = (document: DocumentNode, offset: number) => argumentPathWhere(document, (value) => value.loc?.start === offset);

/** Where a variable is first used as an argument value, or null. */
export const argumentPathOfVariable = (document: DocumentNode, name: string) =>
  argumentPathWhere(document, (value) => value.kind === Kind.VARIABLE && value.name.value === name);

/** graphql-js' coercion message: `Variable "$f" got invalid value … at "f.bbox[2]"; …`. */
const VARIABLE_ERROR = /^Variable "\$(\w+)" got invalid value .*? at "([^"]+)"; |^Variable "\$(\w+)" got invalid value /s;

const VALUE_KINDS = new Set<string>([Kind.INT, Kind.FLOAT, Kind.STRING, Kind.BOOLEAN, Kind.NULL, Kind.ENUM, Kind.LIST, Kind.OBJECT]);

/**
 * A validation error about a literal argument value, or a variable that failed coercion, given
 * `field` (and its message prefixed with it, as every BAD_USER_INPUT message is); any other
 * error is returned as it is.
 */
export function namingTheArgument(formatted: GraphQLFormattedError, original: unknown): GraphQLFormattedError {
  const code = formatted.extensions?.code;
  if ((code !== 'GRAPHQL_VALIDATION_FAILED' && code !== 'BAD_USER_INPUT') || formatted.extensions?.field) return formatted;
  const error = original instanceof GraphQLError ? original : null;
  const node = error?.nodes?.[0];
  const body = error?.source?.body;
  if (!node?.loc || body === undefined) return formatted;
  let document: DocumentNode;
  try {
    document = parse(body);
  } catch {
    return formatted;
  }
  let path: string | null = null;
  if (code === 'GRAPHQL_VALIDATION_FAILED' && VALUE_KINDS.has(node.kind)) {
    path = argumentPathAt(document, node.loc.start);
  } else if (code === 'BAD_USER_INPUT' && node.kind === Kind.VARIABLE_DEFINITION) {
    // A variable that failed coercion: named by the argument it is given to, and the place
    // within its value (`f.bbox[2]` becomes `filter.bbox.2`).
    const match = VARIABLE_ERROR.exec(formatted.message);
    const name = match?.[1] ?? match?.[3];
    const argument = name ? argumentPathOfVariable(document, name) : null;
    const within = match?.[2]?.slice(name!.length).replace(/\[(\d+)\]/g, '.$1') ?? '';
    path = argument ? `${argument}${within}` : null;
  }
  if (!path) return formatted;
  return { ...formatted, message: `${path}: ${formatted.message}`, extensions: { ...formatted.extensions, field: path } };
}
