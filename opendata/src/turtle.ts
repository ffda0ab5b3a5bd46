/**
 * The catalogue's JSON-LD written as Turtle (RDF 1.1 Turtle, `text/turtle`): the same graph,
 * for harvesters and tools that read Turtle rather than JSON-LD.
 *
 * It reads the compact JSON-LD the catalogue builds (`catalog.ts`), not any JSON-LD: a
 * `@context` of prefixes only; node objects with an optional absolute `@id` and compact
 * `@type`s; values that are strings (plain literals), whole numbers, booleans, `{ "@id" }`
 * references, `{ "@value", "@type" | "@language" }` literals, nested nodes (blank nodes without
 * `@id`) and arrays of those (unordered). Anything else throws: a catalogue that grew a construct
 * this writer does not know must fail its test, not publish a different graph.
 * `test/catalog-turtle.test.ts` checks the graph against a JSON-LD processor's.
 */

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type Node = { [key: string]: Json };

const RDF_TYPE = 'a';

/**
 * An IRIREF. The characters Turtle does not allow in one (§6.4: controls, space, `<>"{}|^\``, `\`)
 * are not allowed in an IRI at all (RFC 3987), escaped or not: such a value is refused, not written.
 */
const iri = (value: string) => {
  if (/[\u0000-\u0020<>"{}|^`\\]/.test(value)) throw new Error(`turtle: ${JSON.stringify(value.slice(0, 80))} is not an IRI (percent-encode it)`);
  return `<${value}>`;
};

/** STRING_LITERAL_QUOTE with ECHAR escapes. */
const literal = (value: string) =>
  `"${value.replace(/[\\"\n\r\t\b\f]|[\u0000-\u001f\u007f]/g, (c) => {
    const named: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };
    return named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`;
  })}"`;

/** A local name written as it is in a prefixed name: letters, digits, `_`, `-`, not starting with `-`. */
const SIMPLE_LOCAL = /^[A-Za-z_][A-Za-z0-9_-]*$/;

class TurtleWriter {
  private readonly prefixes: [string, string][];

  constructor(context: Record<string, Json>) {
    this.prefixes = Object.entries(context).map(([prefix, namespace]) => {
      if (typeof namespace !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(prefix)) throw new Error(`turtle: @context entry ${prefix} is not a prefix`);
      return [prefix, namespace];
    });
  }

  /** `dcat:Dataset` → the full IRI; an absolute IRI stays as it is. */
  expand(term: string): string {
    const colon = term.indexOf(':');
    if (colon > 0) {
      const namespace = this.prefixes.find(([prefix]) => prefix === term.slice(0, colon))?.[1];
      if (namespace !== undefined && !term.slice(colon + 1).startsWith('//')) return namespace + term.slice(colon + 1);
    }
    if (!/^[a-z][a-z0-9+.-]*:/i.test(term)) throw new Error(`turtle: '${term}' is neither a compact nor an absolute IRI`);
    return term;
  }

  /** The shortest Turtle form of an IRI: a prefixed name when one fits, else `<…>`. */
  term(full: string): string {
    for (const [prefix, namespace] of this.prefixes) {
      if (full.startsWith(namespace) && SIMPLE_LOCAL.test(full.slice(namespace.length))) return `${prefix}:${full.slice(namespace.length)}`;
    }
    return iri(full);
  }

  header(): string {
    return this.prefixes.map(([prefix, namespace]) => `@prefix ${prefix}: ${iri(namespace)} .`).join('\n');
  }

  /** The object of a triple; nested nodes with an `@id` are queued as subjects of their own. */
  object(value: Json, indent: string, queue: Node[]): string {
    if (typeof value === 'string') return literal(value);
    if (typeof value === 'boolean') return String(value);
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new Error(`turtle: ${value} is not a whole number (doubles are not written)`);
      return String(value);
    }
    if (value === null || Array.isArray(value)) throw new Error('turtle: null and nested arrays are not written');
    if ('@value' in value) {
      const keys = Object.keys(value);
      if (typeof value['@value'] !== 'string' || keys.some((key) => !['@value', '@type', '@language'].includes(key))) {
        throw new Error(`turtle: unsupported value object ${JSON.stringify(value).slice(0, 80)}`);
      }
      if (typeof value['@type'] === 'string') return `${literal(value['@value'])}^^${this.term(this.expand(value['@type']))}`;
      if (typeof value['@language'] === 'string') return `${literal(value['@value'])}@${value['@language']}`;
      return literal(value['@value']);
    }
    if (typeof value['@id'] === 'string') {
      if (Object.keys(value).length > 1) queue.push(value);
      return this.term(this.expand(value['@id']));
    }
    return `[\n${this.predicates(value, `${indent}  `, queue)}\n${indent}]`;
  }

  /** `predicate object, object ;` lines of one node, `@type` first as `a`. */
  predicates(node: Node, indent: string, queue: Node[]): string {
    const lines: string[] = [];
    for (const [key, raw] of Object.entries(node)) {
      if (key === '@id' || key === '@context') continue;
      const values = Array.isArray(raw) ? raw : [raw];
      if (values.length === 0) continue;
      if (key === '@type') {
        lines.unshift(`${indent}${RDF_TYPE} ${values.map((type) => this.term(this.expand(String(type)))).join(', ')}`);
        continue;
      }
      if (key.startsWith('@')) throw new Error(`turtle: keyword ${key} is not written`);
      const objects = values.map((value) => this.object(value, indent, queue));
      lines.push(`${indent}${this.term(this.expand(key))} ${objects.join(`,\n${indent}    `)}`);
    }
    return lines.join(' ;\n');
  }

  /** Each node with an `@id` is one subject block; nested `@id` nodes follow as blocks of their own. */
  subjects(root: Node): string {
    const blocks: string[] = [];
    const queue: Node[] = [root];
    const written = new Set<string>();
    while (queue.length > 0) {
      const node = queue.shift()!;
      const id = node['@id'];
      if (typeof id !== 'string') throw new Error('turtle: a top-level node needs an @id');
      const body = this.predicates(node, '    ', queue);
      // The same resource described twice (a distribution reached from two datasets) is one subject with both descriptions.
      const key = `${id}\n${body}`;
      if (written.has(key) || body === '') continue;
      written.add(key);
      blocks.push(`${this.term(this.expand(id))}\n${body} .`);
    }
    return blocks.join('\n\n');
  }
}

/** Turtle of a compact JSON-LD document of the catalogue's shape (see the module comment). */
export function jsonLdToTurtle(compact: object): string {
  const document = compact as Node;
  const context = document['@context'];
  if (!context || typeof context !== 'object' || Array.isArray(context)) throw new Error('turtle: the document needs a @context of prefixes');
  const writer = new TurtleWriter(context);
  return `${writer.header()}\n\n${writer.subjects(document)}\n`;
}
