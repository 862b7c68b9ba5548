// The page's requests to its server: a failed connection (server stopped, network down)
// says so and what to do, instead of the browser's bare "Failed to fetch"; an error answer
// becomes its JSON { error } message.

export const UNREACHABLE = 'the server is unreachable (stopped, or the network is down): start it again with `npx latentkit serve` and reload this page';

/** fetch() whose network failure reads as UNREACHABLE (with the URL's path). */
export async function apiFetch(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new Error(UNREACHABLE, { cause: e });
  }
}

/** The error message of a failed answer: its JSON { error }, else the status line. */
export async function errorOf(r: Response): Promise<string> {
  const j = (await r.json().catch(() => null)) as { error?: string } | null;
  return j?.error ?? `${r.status} ${r.statusText}`;
}

/** apiFetch that throws the answer's error message unless it is 2xx. */
export async function apiCall(url: string, init?: RequestInit): Promise<Response> {
  const r = await apiFetch(url, init);
  if (!r.ok) throw new Error(await errorOf(r));
  return r;
}
