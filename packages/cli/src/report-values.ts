/** Escapes the characters that HTML text and attribute values reserve. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

/** Reads a dotted config path such as `train.head.units`. */
export function valueAt(config: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((value, key) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined), config);
}

function formatNumber(value: number): string {
  if (Number.isInteger(value)) return String(value);
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e6 ? String(Number(value.toPrecision(4))) : value.toExponential(3);
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** Formats a value in one line of plain text: numbers to four significant digits, objects as `key value` pairs. */
function inlineText(value: unknown): string {
  if (value === null || value === undefined) return 'none';
  if (typeof value === 'number') return formatNumber(value);
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.map(inlineText).join(isPlainObject(value[0]) ? '; ' : ', ');
  if (isPlainObject(value)) return Object.entries(value).map(([key, item]) => `${key} ${inlineText(item)}`).join(', ');
  return String(value);
}

/**
 * Converts an array of records to an object of their other fields, keyed by a text field whose
 * value is unique to each record (such as a class name). Returns undefined when no field is.
 */
function keyByLabel(items: readonly unknown[]): Record<string, unknown> | undefined {
  if (items.length === 0 || !items.every(isPlainObject)) return undefined;
  const records = items as Array<Record<string, unknown>>;
  const label = Object.keys(records[0]).find((key) => {
    const values = records.map((record) => record[key]);
    return values.every((value) => typeof value === 'string') && new Set(values).size === values.length;
  });
  if (label === undefined) return undefined;
  return Object.fromEntries(records.map(({ [label]: name, ...rest }) => [name as string, rest]));
}

/**
 * Flattens nested objects into dotted keys (`tstr.validation.auc`), so a record becomes one row.
 * With `labelArrays`, arrays of labelled records flatten too (`diversity.malignant.ratio`). Other
 * arrays stay leaves, to be written inline.
 */
function flatten(value: Record<string, unknown>, prefix = '', labelArrays = false): Array<[string, unknown]> {
  return Object.entries(value).flatMap(([key, item]): Array<[string, unknown]> => {
    const keyed = labelArrays && Array.isArray(item) ? keyByLabel(item) : undefined;
    const nested = isPlainObject(item) ? item : keyed;
    return nested === undefined ? [[`${prefix}${key}`, item]] : flatten(nested, `${prefix}${key}.`, labelArrays);
  });
}

function cell(value: unknown): string {
  if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) return '<span class="muted">none</span>';
  return escapeHtml(inlineText(value));
}

/**
 * Renders records as one table row each, with nested fields as dotted columns. Columns that hold
 * the same value in every row are written once above the table, which keeps it narrow.
 */
function recordTable(records: ReadonlyArray<Record<string, unknown>>): string {
  const rows = records.map((record) => new Map(flatten(record, '', true)));
  const columns = [...new Set(rows.flatMap((row) => [...row.keys()]))];
  const same = (column: string) => rows.length > 1 && rows.every((row) => JSON.stringify(row.get(column)) === JSON.stringify(rows[0].get(column)));
  const constant = columns.filter(same);
  const varying = columns.filter((column) => !same(column));

  const shared = constant.length === 0 ? '' : `<p class="muted">In every row: ${constant.map((column) => `${escapeHtml(column)} ${cell(rows[0].get(column))}`).join('; ')}.</p>\n`;
  const head = varying.map((column) => `<th>${escapeHtml(column)}</th>`).join('');
  const body = rows.map((row) => `<tr>${varying.map((column) => `<td>${cell(row.get(column))}</td>`).join('')}</tr>`).join('\n');
  return `${shared}<div class="scroll"><table class="values"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

/**
 * Renders any JSON value as HTML for measurements whose shape the report does not fix in
 * advance. An object becomes a table of its fields, with nested objects flattened to dotted
 * names. Each array of objects becomes a table of its own below it, and other values are written
 * inline with numbers to four significant digits.
 */
export function renderValue(value: unknown): string {
  if (Array.isArray(value) && value.length > 0 && value.every(isPlainObject)) return recordTable(value);
  if (!isPlainObject(value)) return cell(value);

  const fields = flatten(value);
  const isRecordList = (item: unknown) => Array.isArray(item) && item.length > 0 && item.every(isPlainObject);
  const rows = fields
    .filter(([, item]) => !isRecordList(item))
    .map(([key, item]) => `<tr><th>${escapeHtml(key)}</th><td>${cell(item)}</td></tr>`);
  const lists = fields
    .filter(([, item]) => isRecordList(item))
    .map(([key, item]) => `<h4>${escapeHtml(key)}</h4>\n${recordTable(item as Array<Record<string, unknown>>)}`);
  const table = rows.length === 0 ? '' : `<div class="scroll"><table class="values"><tbody>${rows.join('')}</tbody></table></div>`;
  return [table, ...lists].filter((part) => part !== '').join('\n');
}
