import { closeSync, fstatSync, lstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { busy, errnoCode, operationFailed } from '../errors.js';
import { SystemCallError } from '../kernel/bpf.js';
import { flock, LockOp } from '../kernel/libc.js';
import { stopIfSignalled } from '../signals.js';

export interface Lock {
  release(): void;
}

const POLL_MS = 20;

/**
 * Creates the runtime directory if missing, and refuses one that others could
 * have planted or could write to: it must be a real directory owned by us,
 * writable by no one else.
 */
export function ensureRunDir(runDir: string): void {
  mkdirSync(runDir, { recursive: true, mode: 0o755 });
  const stat = lstatSync(runDir);
  if (!stat.isDirectory() || stat.uid !== process.geteuid?.() || (stat.mode & 0o022) !== 0) {
    throw operationFailed('unsafe-run-dir', `${runDir} is not a directory of its own that only root can write`, {
      hint: `remove it (limiter recreates it): rm -r ${runDir}`,
    });
  }
}

/**
 * Takes the instance lock: an exclusive flock on the runtime directory, waiting
 * up to timeoutMs. purge removes the directory while holding the lock, so a
 * waiter that then gets a lock on the removed directory starts again. The
 * wait yields to the event loop, so that a signal stops a waiting command.
 */
export async function acquireLock(runDir: string, timeoutMs: number): Promise<Lock> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    stopIfSignalled();
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
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      try {
        stopIfSignalled();
      } catch (err) {
        closeSync(fd);
        throw err;
      }
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
