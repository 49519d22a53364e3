/**
 * State changes under the instance lock, all or nothing: the kernel objects
 * are repaired and the state reconciled first, then the work's steps
 * register their undo, and a failure runs them newest first.
 */
import { existsSync, rmSync } from 'node:fs';
import type { Context } from '../context.js';
import { notFound } from '../errors.js';
import { ensureInstance, isSetUp, unpinAll } from '../kernel/attach.js';
import { removeCgroup } from '../kernel/cgroup.js';
import { openMaps, type MapFds } from '../kernel/maps.js';
import { log } from '../log.js';
import { rollBack } from '../undo.js';
import { acquireLock } from './lock.js';
import { reconcile } from './reconcile.js';
import { syncOwnership, type Transaction } from './rule.js';
import { loadState, saveState, type State } from './state.js';

/**
 * Runs work under the instance lock with the current state. A runtime
 * directory that only the lock created is removed again when no state came of it.
 */
export async function withLockedState<T>(ctx: Context, work: (state: State) => T): Promise<T> {
  const fresh = !existsSync(ctx.instance.runDir);
  const lock = await acquireLock(ctx.instance.runDir, ctx.lockTimeoutMs);
  try {
    return work(loadState(ctx.instance.stateFile));
  } finally {
    if (fresh && !existsSync(ctx.instance.stateFile)) rmSync(ctx.instance.runDir, { recursive: true, force: true });
    lock.release();
  }
}

export interface TransactionOptions {
  /** attach the program when the instance has none yet */
  attach: boolean;
  /** a rule the work is about to end: that its processes have exited is expected, not a finding */
  ending?: string;
}

export function transaction<T>(ctx: Context, options: TransactionOptions, work: (t: Transaction) => T): Promise<T> {
  return withLockedState(ctx, (state) => {
    const undo: Array<() => void> = [];
    let maps: MapFds | null = null;
    try {
      const known = Object.keys(state.rules).length > 0 || isSetUp(ctx.instance);
      if (options.attach || known) repairPins(ctx, known, undo);
      maps = openMaps(ctx.instance);
      if (!maps) {
        throw notFound('no-rules', `instance ${ctx.instance.name} has no rules`, {
          hint: "'limiter set' creates the first one",
        });
      }
      const t: Transaction = { ctx, maps, state, undo };
      reconcile(t, options.ending);
      const result = work(t);
      syncOwnership(t);
      saveState(ctx.instance.stateFile, state);
      return result;
    } catch (err) {
      rollBack(undo);
      throw err;
    } finally {
      maps?.close();
    }
  });
}

/**
 * Attaches a new instance, or repairs one that has lost a pin (a pinned map,
 * program or link removed by hand, a crash in the middle of a reload).
 */
function repairPins(ctx: Context, known: boolean, undo: Array<() => void>): void {
  const where = `instance ${ctx.instance.name}`;
  let repaired;
  try {
    repaired = ensureInstance(ctx.instance, ctx.cgroupMount, ctx.objectPath);
  } catch (err) {
    if (!known) throw err;
    log.warn(`${where} is missing pins and cannot be repaired: ${(err as Error).message}`);
    return;
  }
  if (!repaired) return;
  if (!known) {
    undo.push(() => removeInstance(ctx));
    return;
  }
  if (repaired.recoveredMaps.length > 0) {
    log.warn(
      `the pinned maps ${repaired.recoveredMaps.join(', ')} of ${where} had been removed; pinned them again from the attached program (limits, tokens and counters kept)`,
    );
  }
  if (repaired.newMaps.length > 0) {
    log.warn(
      `the maps ${repaired.newMaps.join(', ')} of ${where} had been removed with nothing left using them; made new ones`,
    );
  }
  if (repaired.recoveredMaps.length + repaired.newMaps.length === 0) {
    log.warn(`${where} had lost a pinned program; loaded it again`);
  }
}

/** The instance's own kernel objects, cgroup and runtime directory; its rules must be gone. */
export function removeInstance(ctx: Context): void {
  unpinAll(ctx.instance);
  removeCgroup(ctx.instance.cgroupDir);
  rmSync(ctx.instance.runDir, { recursive: true, force: true });
}
