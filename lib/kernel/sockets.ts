/**
 * The internet sockets a process holds, and giving them to a rule: the
 * sockets map is written through a duplicate of each socket's descriptor
 * (pidfd_getfd), since a socket keeps the cgroup it was created in
 * (design.md K5) and a listener's storage passes to what it accepts (K14).
 */
import { closeSync, readdirSync, readlinkSync } from 'node:fs';
import { errnoCode } from '../errors.js';
import { emptySocketBuffer, encodeOwnedSocket, socketKey } from './abi.js';
import { mapDelete, mapLookup, mapUpdate } from './bpf.js';
import { maxPacingRate, pidfdGetfd, pidfdOpen, setMaxPacingRate, socketIdentity, type SocketIdentity } from './libc.js';

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;

export interface OwnedCount {
  /** TCP and UDP sockets, connected or not, listeners excluded */
  sockets: number;
  /** TCP listeners: what they accept from now on goes with them */
  listeners: number;
  /** other internet sockets (raw, SCTP): their uploads only */
  other: number;
}

function openFds(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map(Number);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}

/** Calls visit with a duplicate of each internet socket of pid (closed afterwards); nothing when it has gone. */
function eachInetSocket(pid: number, visit: (fd: number, identity: SocketIdentity) => void): void {
  const pidfd = pidfdOpen(pid);
  if (pidfd === null) return;
  try {
    for (const number of openFds(pid)) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${number}`);
      } catch {
        continue; // closed meanwhile
      }
      if (!target.startsWith('socket:[')) continue;
      // A duplicate in this process: map updates and getsockopt need an fd of our own.
      const fd = pidfdGetfd(pidfd, number);
      if (fd === null) continue;
      try {
        const identity = socketIdentity(fd);
        if (identity.domain === AF_INET || identity.domain === AF_INET6) visit(fd, identity);
      } finally {
        closeSync(fd);
      }
    }
  } finally {
    closeSync(pidfd);
  }
}

/**
 * Gives every internet socket of pid to the rule at slot (whose cgroup id is
 * owner), or releases them (slot NO_SLOT). TCP sockets are paced at pacing
 * bytes per second when it is given (a listener's pacing passes to what it
 * accepts): their cgroup's programs do not run for them, so they cannot be
 * paced at their share as the rule's own sockets are. Returns what it counted
 * and how to put the sockets' previous entries and pacing back.
 */
export function ownSockets(
  socketsMap: number,
  pid: number,
  owner: number,
  slot: number,
  pacing: bigint | null,
): { count: OwnedCount; undo: () => void } {
  const count: OwnedCount = { sockets: 0, listeners: 0, other: 0 };
  const previous = new Map<string, { entry: Buffer | null; pacing: bigint | null }>();
  eachInetSocket(pid, (fd, identity) => {
    const old = emptySocketBuffer();
    const tcp = identity.type === SOCK_STREAM && pacing !== null;
    previous.set(identity.cookie, {
      entry: mapLookup(socketsMap, socketKey(fd), old) ? old : null,
      pacing: tcp ? maxPacingRate(fd) : null,
    });
    mapUpdate(socketsMap, socketKey(fd), encodeOwnedSocket(owner, slot));
    if (tcp) setMaxPacingRate(fd, pacing);
    if (identity.listening) count.listeners += 1;
    else if (identity.type === SOCK_STREAM || identity.type === SOCK_DGRAM) count.sockets += 1;
    else count.other += 1;
  });
  const undo = () =>
    eachInetSocket(pid, (fd, identity) => {
      const old = previous.get(identity.cookie);
      if (!old) return;
      if (old.entry) mapUpdate(socketsMap, socketKey(fd), old.entry);
      else mapDelete(socketsMap, socketKey(fd));
      if (old.pacing !== null) setMaxPacingRate(fd, old.pacing);
    });
  return { count, undo };
}
