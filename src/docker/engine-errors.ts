/**
 * The engine's refusals that mean "already so". dockerode rejects with the
 * HTTP status in `statusCode`; 404 (gone), 304 (already started or stopped)
 * and 409 (already made) often count as done for cvm's calls.
 */

export function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number } | undefined)?.statusCode;
}

export const isNotFound = (error: unknown): boolean => statusOf(error) === 404;

/** Runs an engine call whose listed statuses count as success (answered as undefined). */
export async function ignoring<T>(statuses: readonly number[], call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (error) {
    if (statuses.includes(statusOf(error) ?? 0)) return undefined;
    throw error;
  }
}

/** Gone already (404), or already as asked (304): nothing is left to do. */
export function ignoreMissing<T>(call: Promise<T>): Promise<T | undefined> {
  return ignoring([404, 304], call);
}
