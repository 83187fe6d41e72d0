// Fetching JSON from an admin API (mesh-server's or mesh-agent's) for meshctl commands, with errors
// that name the URL and say what went wrong (unreachable, timeout, HTTP status, not our API).

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:15014';
export const DEFAULT_TIMEOUT_MS = 5000;

export type AdminFetch = { ok: true; url: URL; body: unknown } | { ok: false; message: string };

/** What went wrong in words: fetch hides the socket error in `cause`, and a timeout is a DOMException. */
function describeFetchError(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer within ${timeoutMs} ms`;
  }
  if (error instanceof Error) {
    const cause: unknown = error.cause;
    if (cause instanceof Error) {
      const code = (cause as NodeJS.ErrnoException).code;
      return code && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
    }
    return error.message;
  }
  return String(error);
}

/** The error message of one of our JSON error bodies, else the start of whatever came back. */
function describeErrorBody(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as { message?: unknown }).message === 'string') {
      return (parsed as { message: string }).message;
    }
  } catch {
    // Not JSON (a proxy's HTML page, say): show the raw text below.
  }
  const text = body.trim();
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** Whose admin API is asked, for the wording of errors. */
export interface AdminTarget {
  /** `mesh-server` or `mesh-agent`. */
  program: string;
  /** The flag that names the URL, e.g. `--server`. */
  flag: string;
  defaultUrl: string;
}

const MESH_SERVER: AdminTarget = { program: 'mesh-server', flag: '--server', defaultUrl: DEFAULT_ADMIN_URL };

/** GET `path` (with `query`) from the admin API at `base` and parse the JSON body. */
export async function fetchAdminJson(base: string, path: string, query: Record<string, string>, timeoutMs = DEFAULT_TIMEOUT_MS, target: AdminTarget = MESH_SERVER): Promise<AdminFetch> {
  let url: URL;
  try {
    url = new URL(`${(base || target.defaultUrl).replace(/\/+$/, '')}${path}`);
  } catch {
    return { ok: false, message: `${target.flag} ${JSON.stringify(base)} is not a URL (expected e.g. ${target.defaultUrl})` };
  }
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
    const body = await response.text();
    if (!response.ok) return { ok: false, message: `${url.href} answered HTTP ${response.status}: ${describeErrorBody(body)}` };
    return { ok: true, url, body: JSON.parse(body) as unknown };
  } catch (error) {
    if (error instanceof SyntaxError) return { ok: false, message: `${url.href} returned a body that is not JSON; is this a ${target.program} admin port?` };
    return { ok: false, message: `cannot reach the ${target.program} admin API at ${url.href}: ${describeFetchError(error, timeoutMs)}` };
  }
}
