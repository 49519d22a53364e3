/** Steps that undo a change made so far, run newest first when a later step fails. */
import { log } from './log.js';

/** Runs undo steps newest first, reporting (not throwing) their own failures. */
export function rollBack(undo: Array<() => void>): void {
  for (const step of undo.reverse()) {
    try {
      step();
    } catch (err) {
      log.warn(`could not undo a step: ${(err as Error).message}`);
    }
  }
}
