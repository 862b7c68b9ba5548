// What every route module of the server shares: an error with an HTTP status (answered as
// JSON { error }) and checked numeric query parameters.

/** An error with an HTTP status, answered as { error }. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A numeric parameter of a query (or JSON body): undefined when absent, else checked (400). */
export function num(q: Record<string, unknown>, key: string, opts: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
  const v = q[key];
  if (v === undefined || v === '') return undefined;
  const x = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(x) || (opts.int && !Number.isInteger(x))) throw new HttpError(400, `'${key}' must be ${opts.int ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
  if (opts.min !== undefined && x < opts.min) throw new HttpError(400, `'${key}' must be ≥ ${opts.min}, got ${x}`);
  if (opts.max !== undefined && x > opts.max) throw new HttpError(400, `'${key}' must be ≤ ${opts.max}, got ${x}`);
  return x;
}
