/**
 * A checker of the Frictionless TableSchema rules that etalab/schema-stationnement uses (and only
 * those): a header naming every field in order, `required`, types `string` (with `format: uri`),
 * `integer`, `number`, `boolean`, `pattern` (anchored, as the spec says), `enum`, `minimum` /
 * `maximum`, `missingValues`, `primaryKey` (unique), and the schema's custom check
 * `french-siret-value` (a SIRET passes the Luhn check). Each error names its row and field.
 */

export interface TableSchemaField {
  name: string;
  type: string;
  format?: string;
  constraints?: { required?: boolean; pattern?: string; enum?: string[]; minimum?: number; maximum?: number };
}

export interface TableSchema {
  fields: TableSchemaField[];
  missingValues?: string[];
  primaryKey?: string | string[];
  custom_checks?: { name: string; params: { column: string } }[];
}

export interface SchemaError {
  /** 1 = the header row, 2 = the first data row. */
  row: number;
  field: string;
  message: string;
}

/** RFC 4180 records: quoted fields may hold the separator, quotes (doubled) and line breaks. */
export function parseCsv(text: string, separator: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let value = '';
  let quoted = false;
  let i = 0;
  const body = text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  while (i < body.length) {
    const c = body[i];
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') {
        value += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else value += c;
      i++;
      continue;
    }
    if (c === '"' && value === '') quoted = true;
    else if (c === separator) {
      record.push(value);
      value = '';
    } else if (c === '\r' && body[i + 1] === '\n') {
      record.push(value);
      records.push(record);
      record = [];
      value = '';
      i++;
    } else if (c === '\n') {
      record.push(value);
      records.push(record);
      record = [];
      value = '';
    } else value += c;
    i++;
  }
  if (quoted) throw new Error('unterminated quoted field');
  record.push(value);
  records.push(record);
  return records;
}

/** SIRET: 14 digits passing Luhn (La Poste's establishments, SIREN 356000000, sum digits to a multiple of 5). */
export function isValidSiret(siret: string): boolean {
  if (!/^\d{14}$/.test(siret)) return false;
  if (siret.startsWith('356000000')) return [...siret].reduce((s, d) => s + Number(d), 0) % 5 === 0;
  let sum = 0;
  for (let i = 0; i < 14; i++) {
    let d = Number(siret[13 - i]);
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

const INTEGER = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const BOOLEAN = ['true', 'false', 'True', 'False', 'TRUE', 'FALSE', '1', '0'];

function checkValue(field: TableSchemaField, value: string): string | null {
  const c = field.constraints ?? {};
  switch (field.type) {
    case 'integer':
      if (!INTEGER.test(value)) return `${JSON.stringify(value)} is not an integer`;
      break;
    case 'number':
      if (!NUMBER.test(value)) return `${JSON.stringify(value)} is not a number`;
      break;
    case 'boolean':
      if (!BOOLEAN.includes(value)) return `${JSON.stringify(value)} is not a boolean`;
      break;
    case 'string':
      if (field.format === 'uri') {
        try {
          new URL(value);
        } catch {
          return `${JSON.stringify(value)} is not a URI`;
        }
      }
      break;
    default:
      return `type ${field.type} is not supported by this checker`;
  }
  if (c.pattern !== undefined && !new RegExp(`^(?:${c.pattern})$`, 'u').test(value)) return `${JSON.stringify(value)} does not match ${c.pattern}`;
  if (c.enum !== undefined && !c.enum.includes(value)) return `${JSON.stringify(value)} is not one of ${c.enum.join(', ')}`;
  if ((field.type === 'number' || field.type === 'integer') && (c.minimum !== undefined || c.maximum !== undefined)) {
    const n = Number(value);
    if (c.minimum !== undefined && n < c.minimum) return `${value} is below the minimum ${c.minimum}`;
    if (c.maximum !== undefined && n > c.maximum) return `${value} is above the maximum ${c.maximum}`;
  }
  return null;
}

/** Every error of `csv` against `schema` (empty when valid). */
export function validateTable(schema: TableSchema, csv: string, separator: string): SchemaError[] {
  const errors: SchemaError[] = [];
  const [header, ...rows] = parseCsv(csv, separator);
  const names = schema.fields.map((f) => f.name);
  if (header.length !== names.length || header.some((h, i) => h !== names[i])) {
    const missing = names.filter((n) => !header.includes(n));
    const extra = header.filter((h) => !names.includes(h));
    errors.push({ row: 1, field: missing[0] ?? extra[0] ?? header.find((h, i) => h !== names[i]) ?? '', message: `header must be ${names.join(separator)}` });
    return errors;
  }
  const missingValues = schema.missingValues ?? [''];
  const keys = new Set<string>();
  const primary = schema.primaryKey === undefined ? [] : Array.isArray(schema.primaryKey) ? schema.primaryKey : [schema.primaryKey];
  const siretColumns = (schema.custom_checks ?? []).filter((c) => c.name === 'french-siret-value').map((c) => c.params.column);
  rows.forEach((values, index) => {
    const row = index + 2;
    if (values.length !== names.length) {
      errors.push({ row, field: '', message: `has ${values.length} fields, the header ${names.length}` });
      return;
    }
    schema.fields.forEach((field, i) => {
      const value = values[i];
      if (missingValues.includes(value)) {
        if (field.constraints?.required) errors.push({ row, field: field.name, message: 'is required' });
        return;
      }
      const problem = checkValue(field, value);
      if (problem) errors.push({ row, field: field.name, message: problem });
      if (siretColumns.includes(field.name) && !isValidSiret(value)) errors.push({ row, field: field.name, message: `${value} is not a valid SIRET (Luhn)` });
    });
    if (primary.length > 0) {
      const key = JSON.stringify(primary.map((name) => values[names.indexOf(name)]));
      if (keys.has(key)) errors.push({ row, field: primary.join(','), message: `primary key ${key} is repeated` });
      keys.add(key);
    }
  });
  return errors;
}
