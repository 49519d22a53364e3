import { closeSync, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { busy, errnoCode } from './errors.js';
import { flock, LockOp, SystemCallError } from './libbpf.js';

export interface Lock {
  release(): void;
}

const POLL_MS = 20;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Creates the runtime directory (root-owned, not world-writable) if missing. */
export function ensureRunDir(runDir: string): void {
  mkdirSync(runDir, { recursive: true, mode: 0o755 });
}

/**
 * Takes the instance lock: an exclusive flock on the runtime directory, waiting
 * up to timeoutMs. purge removes the directory while holding the lock, so a
 * waiter that then gets a lock on the removed directory starts again.
 */
export function acquireLock(runDir: string, timeoutMs: number): Lock {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    ensureRunDir(runDir);
    const fd = openSync(runDir, 'r');
    let errno: number;
    while ((errno = flock(fd, LockOp.exclusive | LockOp.nonBlocking)) === osConstants.errno.EWOULDBLOCK) {
      if (Date.now() >= deadline) {
        closeSync(fd);
        throw busy('locked', `another limiter command holds the lock on ${runDir}`, {
          hint: `it waited ${timeoutMs / 1000} s; set LIMITER_LOCK_TIMEOUT (seconds) to wait longer`,
        });
      }
      sleep(POLL_MS);
    }
    if (errno !== 0) {
      closeSync(fd);
      throw new SystemCallError(`lock ${runDir}`, errno);
    }
    if (sameDirectory(fd, runDir)) return { release: () => closeSync(fd) };
    closeSync(fd);
  }
}

function sameDirectory(fd: number, path: string): boolean {
  try {
    return fstatSync(fd).ino === statSync(path).ino;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

export function lockTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const seconds = Number(env.LIMITER_LOCK_TIMEOUT ?? '10');
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 10_000;
}
