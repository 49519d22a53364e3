/**
 * Ctrl-C and friends. State changes run synchronously once the lock is held,
 * so a signal that arrives then is handled after the step is complete; a
 * signal that arrives while a command waits for the lock stops it before it
 * changes anything.
 */
import { constants as osConstants } from 'node:os';
import { LimiterError } from './errors.js';

const WATCHED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let received: NodeJS.Signals | null = null;

/** Records the first SIGINT, SIGTERM or SIGHUP instead of dying at once. */
export function watchSignals(): void {
  for (const signal of WATCHED) process.on(signal, () => (received ??= signal));
}

export function receivedSignal(): NodeJS.Signals | null {
  return received;
}

/** 128 + the signal's number, as shells report a process a signal ended. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + osConstants.signals[signal];
}

/** Throws if a signal has arrived: for points where nothing has changed yet. */
export function stopIfSignalled(): void {
  if (received) {
    throw new LimiterError(signalExitCode(received), 'interrupted', `interrupted by ${received}; nothing was changed`);
  }
}
