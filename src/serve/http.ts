// What every route module of the server shares: an error with an HTTP status (answered as
// JSON { error }), checked numeric query parameters, and the optional packages' check.
import { createRequire } from 'node:module';

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

/** Whether an optional package (a peer dependency) can be loaded from here. */
export function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

/** The emoji images (an optional peer dependency): what needs them answers 503 without them. */
export const EMOJI_PACKAGE = 'emoji-datasource-google';
export const EMOJI_INSTALL = `npm install ${EMOJI_PACKAGE}@16`;

export function emojiMissing(what: string, instead?: string): HttpError {
  return new HttpError(503, `${what} needs the emoji images, which are not installed here: run \`${EMOJI_INSTALL}\` where you run latentkit, then restart the server${instead ? ` (${instead})` : ''}`);
}
