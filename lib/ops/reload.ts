/** `limiter reload`: replace the programs, keep the maps. */
import type { Context } from '../context.js';
import { reloadPrograms, requireSetUp } from '../kernel/attach.js';
import { withLockedState } from '../store/transaction.js';

/**
 * Replaces the programs of the instance with those of objectPath, keeping the
 * maps. The object is checked and loaded before any link changes.
 */
export async function reload(ctx: Context, objectPath: string): Promise<{ links: number }> {
  // Checked before the lock too, so that refusing leaves not even a runtime directory.
  requireSetUp(ctx.instance);
  return withLockedState(ctx, () => reloadPrograms(ctx.instance, ctx.cgroupMount, objectPath));
}
