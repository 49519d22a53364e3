/**
 * The internet sockets a process holds, by cookie: the key the programs use
 * to limit sockets created before their process was limited (design.md K5).
 */
import { closeSync, readdirSync, readlinkSync } from 'node:fs';
import { errnoCode } from '../errors.js';
import { pidfdGetfd, pidfdOpen, socketIdentity } from './libc.js';

const AF_INET = 2;
const AF_INET6 = 10;

/** Cookies of the IPv4 and IPv6 sockets among the open files of pid ([] when it has gone). */
export function inetSocketCookies(pid: number): string[] {
  const pidfd = pidfdOpen(pid);
  if (pidfd === null) return [];
  const cookies = new Set<string>();
  try {
    for (const fd of openFds(pid)) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue; // closed meanwhile
      }
      if (!target.startsWith('socket:[')) continue;
      // A duplicate in this process: getsockopt needs an fd of our own. Closing it leaves the original alone.
      const copy = pidfdGetfd(pidfd, fd);
      if (copy === null) continue;
      try {
        const { domain, cookie } = socketIdentity(copy);
        if (domain === AF_INET || domain === AF_INET6) cookies.add(cookie);
      } finally {
        closeSync(copy);
      }
    }
  } finally {
    closeSync(pidfd);
  }
  return [...cookies];
}

function openFds(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map(Number);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}
