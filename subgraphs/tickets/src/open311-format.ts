/**
 * Open311 GeoReport v2 answers in both formats the spec names: XML (required) and JSON, where
 * JSON mirrors the XML with the root element dropped (the "Spark" convention: `services.json` is
 * an array of service objects, `services/{code}.json` one object). One value is built per answer
 * and written either way, so the two formats cannot drift apart.
 */
import type { ServerResponse } from 'node:http';

export type Open311Format = 'json' | 'xml';

export const CONTENT_TYPES: Readonly<Record<Open311Format, string>> = {
  json: 'application/json; charset=utf-8',
  xml: 'text/xml; charset=utf-8',
};

/** A JSON-ready value: what an answer is made of. */
export type Open311Value = string | number | boolean | null | Open311Value[] | { [key: string]: Open311Value };

/**
 * The element name of each item of a list, by the list's own element name (GeoReport v2's XML):
 * `<services><service>…</service></services>`, `<service_requests><request>…</request></service_requests>`.
 */
const ITEM_ELEMENT: Readonly<Record<string, string>> = {
  services: 'service',
  service_requests: 'request',
  attributes: 'attribute',
  values: 'value',
  errors: 'error',
  endpoints: 'endpoint',
  formats: 'format',
};

/** The XML answers' root elements, by what they hold. */
export type Open311Root = 'services' | 'service_definition' | 'service_requests' | 'errors' | 'discovery';

/** Characters XML 1.0 cannot carry at all (not even escaped): C0 controls but tab, LF, CR; lone surrogates; U+FFFE/U+FFFF. */
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ud800-\udfff\ufffe\uffff]/gu;
// With the `u` flag, a well-formed surrogate pair is one code point and does not match the
// surrogate range above: only lone halves are removed.

function escapeText(text: string): string {
  return text.replace(NOT_XML, '\ufffd').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function scalarText(value: string | number | boolean): string {
  return typeof value === 'string' ? escapeText(value) : String(value);
}

function element(name: string, value: Open311Value, out: string[]): void {
  if (value === null || value === '') {
    out.push(`<${name}/>`);
  } else if (Array.isArray(value)) {
    if (value.length === 0) {
      out.push(`<${name}/>`);
      return;
    }
    const item = ITEM_ELEMENT[name];
    if (!item) throw new Error(`open311-format: no item element is defined for the list <${name}>`);
    out.push(`<${name}>`);
    for (const entry of value) element(item, entry, out);
    out.push(`</${name}>`);
  } else if (typeof value === 'object') {
    out.push(`<${name}>`);
    for (const [key, child] of Object.entries(value)) element(key, child, out);
    out.push(`</${name}>`);
  } else {
    out.push(`<${name}>${scalarText(value)}</${name}>`);
  }
}

/** The XML document of an answer: `value` under `<root>` (a list's items each in their own element). */
export function toXml(root: Open311Root, value: Open311Value): string {
  const out: string[] = ['<?xml version="1.0" encoding="utf-8"?>'];
  element(root, value, out);
  return out.join('');
}

/** The answer's body in `format`. */
export function render(format: Open311Format, root: Open311Root, value: Open311Value): string {
  return format === 'json' ? JSON.stringify(value) : toXml(root, value);
}

/** Writes an answer. Answers are public data, never cached by shared caches for long: they change as tickets do. */
export function sendOpen311(
  res: ServerResponse,
  status: number,
  format: Open311Format,
  root: Open311Root,
  value: Open311Value,
  headers: Record<string, string> = {},
): void {
  const body = render(format, root, value);
  res.writeHead(status, {
    'content-type': CONTENT_TYPES[format],
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}

/** One GeoReport v2 error: `code` is the HTTP status, `description` says which parameter and why. */
export interface Open311ErrorEntry {
  code: number;
  description: string;
}

/** An `errors` answer: JSON `[{ code, description }]`, XML `<errors><error><code/><description/></error></errors>`. */
export function sendOpen311Errors(
  res: ServerResponse,
  status: number,
  format: Open311Format,
  descriptions: readonly string[],
  headers: Record<string, string> = {},
): void {
  const entries: Open311ErrorEntry[] = descriptions.map((description) => ({ code: status, description }));
  sendOpen311(res, status, format, 'errors', entries as unknown as Open311Value, headers);
}
