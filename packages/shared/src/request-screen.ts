/**
 * What the HTTP path of every server checks on a GraphQL request before Apollo parses it:
 * the persisted-operation rules (gateway) and the token guard on the text that would be parsed.
 * The rest of the limits need the parsed document and run in `requestLimitsPlugin`.
 */
import { graphQLParams, withQuery } from './http.js';
import { tokensRefusal, type QueryLimits } from './limits.js';
import type { PersistedOperations, Refusal } from './persisted-operations.js';

export type Screened = { refusal: Refusal } | { refusal?: undefined; body: unknown; search: string };

export function screenGraphQLRequest(
  request: { method: string; body: unknown; search: string },
  options: { limits: QueryLimits; persisted?: PersistedOperations },
): Screened {
  const { method, search } = request;
  let { body } = request;
  let next = search;
  const params = graphQLParams(method, body, search);
  let query = params.query;
  if (options.persisted) {
    const screening = options.persisted.screen(params);
    if (screening.refusal) return { refusal: screening.refusal };
    if (screening.query !== undefined) {
      query = screening.query;
      ({ body, search: next } = withQuery(method, body, search, screening.query));
    }
  }
  if (typeof query === 'string') {
    const refused = tokensRefusal(query, options.limits);
    if (refused) {
      const { http: _http, ...extensions } = refused.extensions;
      return { refusal: { status: 400, body: { errors: [{ message: refused.message, extensions }] } } };
    }
  }
  return { body, search: next };
}
