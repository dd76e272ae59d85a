import type { z } from 'zod';

/** Issues listed in one error message; the rest are counted. */
const MAX_LISTED_ISSUES = 5;

/** Formats a field path as a config author writes it: `train.head.units`, `train.seeds[0]`. */
export function fieldName(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i > 0 ? '.' : ''}${String(part)}`)).join('');
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[part];
  }
  return value;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Finds the fields of the object schema at `path`, looking through defaults, optionals and unions. */
function objectSchemaAt(schema: z.ZodType, path: readonly PropertyKey[]): Record<string, z.ZodType> | undefined {
  const def = (schema as unknown as { def: Record<string, unknown> & { type: string } }).def;
  if (['default', 'prefault', 'optional', 'nullable'].includes(def.type)) return objectSchemaAt(def.innerType as z.ZodType, path);
  if (def.type === 'union') {
    for (const option of def.options as z.ZodType[]) {
      const found = objectSchemaAt(option, path);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (def.type !== 'object') return undefined;
  const shape = def.shape as Record<string, z.ZodType>;
  if (path.length === 0) return shape;
  const next = shape[String(path[0])];
  return next === undefined ? undefined : objectSchemaAt(next, path.slice(1));
}

/** Computes the Levenshtein distance, to suggest the field a misspelt one was meant to be. */
function editDistance(first: string, second: string): number {
  let previous = Array.from({ length: second.length + 1 }, (_, j) => j);
  for (let i = 1; i <= first.length; i++) {
    const current = [i];
    for (let j = 1; j <= second.length; j++) {
      const substitution = previous[j - 1] + (first[i - 1] === second[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[second.length];
}

/** Describes unknown fields, with the allowed ones and a "did you mean" for near misses. */
export function describeUnknownKeys(keys: readonly string[], allowed: readonly string[] | undefined): string {
  const named = keys.map((key) => `'${key}'`).join(', ');
  if (allowed === undefined) return `unknown ${keys.length === 1 ? 'field' : 'fields'} ${named}`;
  const suggestions = keys
    .map((key) => allowed.find((candidate) => editDistance(key.toLowerCase(), candidate.toLowerCase()) <= 2))
    .filter((candidate): candidate is string => candidate !== undefined);
  const hint = suggestions.length > 0 ? ` Did you mean ${suggestions.map((key) => `'${key}'`).join(', ')}?` : '';
  return `unknown ${keys.length === 1 ? 'field' : 'fields'} ${named}. Allowed: ${allowed.join(', ')}.${hint}`;
}

function describeLimit(issue: z.core.$ZodIssue & { code: 'too_small' | 'too_big' }, value: unknown): string {
  const limit = issue.code === 'too_small' ? issue.minimum : issue.maximum;
  const inclusive = issue.inclusive ?? true;
  const comparisons = issue.code === 'too_small' ? ['>=', '>'] : ['<=', '<'];
  const comparison = inclusive ? comparisons[0] : comparisons[1];
  if (issue.origin === 'array') {
    const bound = issue.code === 'too_small' ? 'at least' : 'at most';
    return `expected ${bound} ${String(limit)} items but received ${Array.isArray(value) ? value.length : describeValue(value)}`;
  }
  if (issue.origin === 'string') return `expected a string of length ${comparison} ${String(limit)} but received ${describeValue(value)}`;
  return `expected a number ${comparison} ${String(limit)} but received ${describeValue(value)}`;
}

/** Describes one issue as `field: what was expected, what was received`. */
export function describeIssue(issue: z.core.$ZodIssue, input: unknown, schema: z.ZodType): string {
  const field = fieldName(issue.path);
  const value = valueAt(input, issue.path);
  switch (issue.code) {
    case 'invalid_type':
      return `${field}: expected ${issue.expected} but received ${describeValue(value)}`;
    case 'invalid_value':
      return `${field}: expected one of ${issue.values.map((allowed) => JSON.stringify(allowed)).join(', ')} but received ${describeValue(value)}`;
    case 'unrecognized_keys':
      return `${field}: ${describeUnknownKeys(issue.keys, Object.keys(objectSchemaAt(schema, issue.path) ?? {}).sort())}`;
    case 'too_small':
    case 'too_big':
      return `${field}: ${describeLimit(issue, value)}`;
    default:
      return `${field}: ${issue.message} (received ${describeValue(value)})`;
  }
}

/**
 * Formats a failed parse of `source` as one line per problem, each naming the field, what the
 * schema allows and the value found.
 */
export function describeIssues(error: z.ZodError, source: string, input?: unknown, schema?: z.ZodType): string {
  const lines = error.issues.slice(0, MAX_LISTED_ISSUES).map((issue) => {
    if (schema === undefined) return `  ${fieldName(issue.path)}: ${issue.message}`;
    return `  ${describeIssue(issue, input, schema)}`;
  });
  const more = error.issues.length - MAX_LISTED_ISSUES;
  if (more > 0) lines.push(`  and ${more} more`);
  return `Invalid config ${source}:\n${lines.join('\n')}`;
}
