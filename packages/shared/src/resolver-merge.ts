/**
 * A subgraph whose resolvers are split by area (one `resolvers-<area>.ts` each) merges them type
 * by type; a field defined by two areas is an error at start, not a silent override.
 */

/** Merges resolver maps; `domain` names the subgraph in the error for a field defined twice. */
export function mergeResolvers<R extends object>(domain: string, ...parts: R[]): R {
  const merged: Record<string, Record<string, unknown>> = {};
  for (const part of parts) {
    for (const [type, fields] of Object.entries(part)) {
      // A scalar (GraphQLScalarType) is taken whole: spreading it would lose its prototype.
      if (Object.getPrototypeOf(fields) !== Object.prototype) {
        if (type in merged) throw new Error(`${domain} resolvers: ${type} is defined twice`);
        merged[type] = fields as Record<string, unknown>;
        continue;
      }
      const existing = merged[type];
      for (const field of Object.keys((fields ?? {}) as object)) {
        if (existing && field in existing) throw new Error(`${domain} resolvers: ${type}.${field} is defined twice`);
      }
      merged[type] = { ...existing, ...(fields as object) };
    }
  }
  return merged as R;
}
