/**
 * What every open-data URL checks of its query string before reading its own parameters: only
 * the parameters it takes, no control characters, no value too long to be valid, and a
 * single-valued parameter given at most once (repeating it is refused rather than resolved by
 * keeping one of the values: the client would not get what at least one of them asked for).
 */

/** A bad query parameter: a 400 whose problem details name `field`. */
export class QueryParameterError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** No valid value comes close; longer ones are refused before they are looked at. */
const MAX_VALUE_LENGTH = 256;

/** Part of a client's value, printable in an error message whatever it holds. */
export const shown = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);

/**
 * Throws QueryParameterError naming the first parameter at fault. `lists` are the parameters
 * that may be repeated (`kind=A&kind=B`); every other one of `accepted` is given at most once.
 */
export function checkParameters(params: URLSearchParams, accepted: readonly string[], lists: readonly string[] = []): void {
  const counts = new Map<string, number>();
  for (const [name, value] of params) {
    if (!accepted.includes(name)) {
      const expected = accepted.length === 0 ? 'this document takes none' : `use ${accepted.join(', ')}`;
      throw new QueryParameterError(name.slice(0, 64), `unknown parameter ${shown(name)}; ${expected}`);
    }
    if (value.length > MAX_VALUE_LENGTH) throw new QueryParameterError(name, `longer than ${MAX_VALUE_LENGTH} characters`);
    if (/[\u0000-\u001f\u007f]/.test(value)) throw new QueryParameterError(name, 'contains control characters');
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  for (const [name, count] of counts) {
    if (count > 1 && !lists.includes(name)) {
      const several = lists.length === 0 ? 'none takes several values' : `only ${lists.join(', ')} takes several values`;
      throw new QueryParameterError(name, `given ${count} times; give it once (${several})`);
    }
  }
}
