/** The libc calls Node lacks: flock, mount, pidfds, getsockopt, setns, if_nameindex. */
import { constants as osConstants } from 'node:os';
import { bindings, c, checkPointer, lastErrno, SystemCallError } from './ffi.js';

/** flock(2) operations. */
export const LockOp = { shared: 1, exclusive: 2, nonBlocking: 4, unlock: 8 } as const;

const SOL_SOCKET = 1;
const SO_TYPE = 3;
const SO_ACCEPTCONN = 30;
const SO_MAX_PACING_RATE = 47;
/** SO_MAX_PACING_RATE's "no limit" */
export const NO_PACING = 0xffffffffffffffffn;
const SO_DOMAIN = 39;
const SO_COOKIE = 57;
const CLONE_NEWNET = 0x40000000;
const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;
const MS_NOSUID = 2;
const MS_NODEV = 4;
const MS_NOEXEC = 8;

/** 0, or the errno of a failed flock(2). */
export function flock(fd: number, operation: number): number {
  return bindings().flock(fd, operation) === 0 ? 0 : lastErrno();
}

/** A pidfd for a process, or null when it has gone. */
export function pidfdOpen(pid: number): number | null {
  const fd = Number(bindings().syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0));
  if (fd >= 0) return fd;
  const errno = lastErrno();
  if (errno === osConstants.errno.ESRCH) return null;
  throw new SystemCallError(`pidfd_open ${pid}`, errno);
}

/** A duplicate, in this process, of another process's file descriptor; null if it is closed. */
export function pidfdGetfd(pidfd: number, targetFd: number): number | null {
  const fd = Number(bindings().syscall(SYS_PIDFD_GETFD, 'int', pidfd, 'int', targetFd, 'unsigned int', 0));
  if (fd >= 0) return fd;
  const errno = lastErrno();
  if (errno === osConstants.errno.EBADF || errno === osConstants.errno.ESRCH) return null;
  throw new SystemCallError('pidfd_getfd', errno);
}

function socketOption(fd: number, name: number, size: 4 | 8, label: string): Buffer {
  const value = Buffer.alloc(8);
  const length = new Uint32Array([size]);
  if (bindings().getsockopt(fd, SOL_SOCKET, name, value, length) !== 0) {
    throw new SystemCallError(`getsockopt ${label}`, lastErrno());
  }
  return value;
}

/** The most a TCP socket's own pacing sends, bytes per second (u64; NO_PACING: no limit). */
export function maxPacingRate(fd: number): bigint {
  return socketOption(fd, SO_MAX_PACING_RATE, 8, 'SO_MAX_PACING_RATE').readBigUInt64LE(0);
}

export function setMaxPacingRate(fd: number, rate: bigint): void {
  const value = Buffer.alloc(8);
  value.writeBigUInt64LE(rate);
  if (bindings().setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, value, 8) !== 0) {
    throw new SystemCallError('setsockopt SO_MAX_PACING_RATE', lastErrno());
  }
}

export interface SocketIdentity {
  /** AF_INET, AF_INET6, ... */
  domain: number;
  /** SOCK_STREAM, SOCK_DGRAM, ... */
  type: number;
  listening: boolean;
  cookie: string;
}

/** What a socket is: its family (SO_DOMAIN), type, whether it listens, and its cookie. */
export function socketIdentity(fd: number): SocketIdentity {
  return {
    domain: socketOption(fd, SO_DOMAIN, 4, 'SO_DOMAIN').readInt32LE(0),
    type: socketOption(fd, SO_TYPE, 4, 'SO_TYPE').readInt32LE(0),
    listening: socketOption(fd, SO_ACCEPTCONN, 4, 'SO_ACCEPTCONN').readInt32LE(0) === 1,
    cookie: socketOption(fd, SO_COOKIE, 8, 'SO_COOKIE').readBigUInt64LE(0).toString(),
  };
}

/** Switches this thread into the network namespace open at fd. */
export function setNetns(fd: number): void {
  if (bindings().setns(fd, CLONE_NEWNET) !== 0) throw new SystemCallError('setns', lastErrno());
}

const IfNameIndex = c.struct('if_nameindex', { if_index: 'unsigned int', if_name: 'const char *' });

/** The network interfaces of this thread's network namespace. */
export function interfaces(): Array<{ index: number; name: string }> {
  const b = bindings();
  const list = checkPointer(b.if_nameindex(), 'if_nameindex');
  try {
    const result: Array<{ index: number; name: string }> = [];
    // An array ended by { 0, NULL }.
    for (let i = 0; ; i++) {
      const entry = c.decode(list, i * c.sizeof(IfNameIndex), IfNameIndex) as { if_index: number; if_name: string };
      if (entry.if_index === 0) return result;
      result.push({ index: entry.if_index, name: entry.if_name });
    }
  } finally {
    b.if_freenameindex(list);
  }
}

export function mountBpffs(target: string): void {
  if (bindings().mount('bpf', target, 'bpf', MS_NOSUID | MS_NODEV | MS_NOEXEC, null) !== 0) {
    throw new SystemCallError(`mount bpffs at ${target}`, lastErrno());
  }
}
