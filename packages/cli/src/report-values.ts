/** Nesting below which `renderValue` prints JSON instead of more tables. */
const MAX_TABLE_DEPTH = 4;

/** Escapes the characters that HTML text and attribute values reserve. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

function formatNumber(value: number): string {
  if (Number.isInteger(value)) return String(value);
  if (!Number.isFinite(value)) return String(value);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e6 ? String(Number(value.toPrecision(4))) : value.toExponential(3);
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Renders any JSON value as HTML: objects as two-column tables, arrays of objects as tables with
 * one column per key, other arrays as lists, and numbers to four significant digits. Used for
 * measurements whose shape the report does not fix in advance.
 */
export function renderValue(value: unknown, depth = 0): string {
  if (value === null || value === undefined) return '<span class="muted">none</span>';
  if (typeof value === 'number') return formatNumber(value);
  if (typeof value === 'string' || typeof value === 'boolean') return escapeHtml(String(value));
  if (depth >= MAX_TABLE_DEPTH) return `<code>${escapeHtml(JSON.stringify(value))}</code>`;

  if (Array.isArray(value)) {
    if (value.length > 0 && value.every(isPlainObject)) {
      const columns = [...new Set(value.flatMap((row) => Object.keys(row)))];
      const head = columns.map((column) => `<th>${escapeHtml(column)}</th>`).join('');
      const rows = value.map((row) => `<tr>${columns.map((column) => `<td>${renderValue(row[column], depth + 1)}</td>`).join('')}</tr>`);
      return `<table class="values"><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
    }
    return value.map((item) => renderValue(item, depth + 1)).join(', ');
  }

  const rows = Object.entries(value as Record<string, unknown>).map(([key, item]) => `<tr><th>${escapeHtml(key)}</th><td>${renderValue(item, depth + 1)}</td></tr>`);
  return `<table class="values"><tbody>${rows.join('')}</tbody></table>`;
}
