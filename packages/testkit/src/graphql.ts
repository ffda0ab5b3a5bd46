/** GraphQL over HTTP, as a client sends it: the one `gql` of every test, to a subgraph or the gateway. */

export interface GraphQLError {
  message: string;
  path?: (string | number)[];
  extensions?: { code?: string; field?: string } & Record<string, unknown>;
}

export interface GraphQLResponse<T = any> {
  status: number;
  data?: T;
  errors?: GraphQLError[];
}

export interface GqlOptions {
  variables?: Record<string, unknown>;
  /** Sent as `authorization: Bearer <token>`. */
  token?: string;
  headers?: Record<string, string>;
}

/** POSTs `query` to `url`; the response's status beside its body, whatever the status. */
export async function gql<T = any>(url: string, query: string, options: GqlOptions = {}): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ query, variables: options.variables }),
  });
  const text = await response.text();
  try {
    return { status: response.status, ...(JSON.parse(text) as Omit<GraphQLResponse<T>, 'status'>) };
  } catch {
    throw new Error(`${url} answered ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
}
