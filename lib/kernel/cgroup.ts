import { mkdirSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { errnoCode, notFound, operationFailed, unsupported } from '../errors.js';

export interface Mount {
  mountPoint: string;
  fsType: string;
}

/** Mounts from /proc/self/mountinfo (octal escapes such as \040 decoded). */
export function parseMountinfo(text: string): Mount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const separator = line.indexOf(' - ');
    if (separator < 0) continue;
    const before = line.slice(0, separator).split(' ');
    const after = line.slice(separator + 3).split(' ');
    if (before.length < 5 || !after[0]) continue;
    mounts.push({ mountPoint: unescape(before[4]), fsType: after[0] });
  }
  return mounts;
}

export function readMounts(): Mount[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

/** The cgroup v2 mount point: /sys/fs/cgroup on pure-v2 hosts, /sys/fs/cgroup/unified in hybrid mode. */
export function findCgroup2Mount(mounts: Mount[] = readMounts()): string {
  const cgroup2 = mounts.filter((m) => m.fsType === 'cgroup2');
  const preferred = cgroup2.find((m) => m.mountPoint === '/sys/fs/cgroup') ?? cgroup2[0];
  if (!preferred) {
    throw unsupported('no-cgroup2', 'no cgroup v2 filesystem is mounted', {
      hint: 'mount it with: mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with systemd.unified_cgroup_hierarchy=1)',
    });
  }
  return preferred.mountPoint;
}

export function isMounted(path: string, fsType: string, mounts: Mount[] = readMounts()): boolean {
  return mounts.some((m) => m.mountPoint === path && m.fsType === fsType);
}

/** A process's cgroup v2 path relative to the mount ("/" for the root), or null if it has gone. */
export function cgroupOfPid(pid: number): string | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ESRCH') return null;
    throw err;
  }
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  if (!line) throw unsupported('no-cgroup2', `pid ${pid} has no cgroup v2 membership`);
  return line.slice(3).replace(/ \(deleted\)$/, '');
}

/** The cgroup id the kernel uses (bpf_skb_cgroup_id): the inode number of the cgroup directory. */
export function cgroupId(dir: string): number {
  return Number(statSync(dir, { bigint: true }).ino);
}

export function listPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}

/** Child cgroups of dir (directories only), or [] when dir does not exist. */
export function childCgroups(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}

/** Moves a whole process (every thread) into the cgroup at dir. */
export function movePid(pid: number, dir: string): void {
  try {
    writeFileSync(join(dir, 'cgroup.procs'), `${pid}\n`);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ESRCH') throw notFound('no-such-pid', `no process with pid ${pid}`);
    if (code === 'ENOENT') throw notFound('no-such-cgroup', `cgroup ${dir} does not exist`);
    throw operationFailed('move-failed', `cannot move pid ${pid} into ${dir}: ${(err as Error).message}`, {
      cause: err,
      hint: code === 'EOPNOTSUPP' ? 'the process is in a threaded cgroup subtree' : undefined,
    });
  }
}

/** Creates a cgroup; true if it was created, false if it already existed. */
export function createCgroup(dir: string): boolean {
  try {
    mkdirSync(dir);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw operationFailed('cgroup-create-failed', `cannot create cgroup ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Removes an empty cgroup; idempotent. */
export function removeCgroup(dir: string): void {
  try {
    rmdirSync(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw operationFailed('cgroup-remove-failed', `cannot remove cgroup ${dir}: ${(err as Error).message}`, {
      cause: err,
      hint: errnoCode(err) === 'EBUSY' ? 'processes are still in it' : undefined,
    });
  }
}

/**
 * The cgroups named name anywhere under root (at most depth levels down),
 * as paths relative to root; skip names a subtree not to look into.
 */
export function findCgroups(root: string, name: string, depth: number, skip: string): string[] {
  const found: string[] = [];
  let level = [''];
  for (let d = 0; d < depth && level.length > 0; d++) {
    const next: string[] = [];
    for (const relative of level) {
      for (const child of childCgroups(join(root, relative))) {
        const path = `${relative}/${child}`;
        if (path === skip) continue;
        if (child === name) found.push(path);
        next.push(path);
      }
    }
    level = next;
  }
  return found;
}

/** The processes of a cgroup and of all cgroups below it. */
export function subtreePids(dir: string): number[] {
  return [...listPids(dir), ...childCgroups(dir).flatMap((child) => subtreePids(join(dir, child)))];
}

/** Joins a path relative to the cgroup2 mount ("/a/b") onto the mount point. */
export function cgroupDirOf(mount: string, relative: string): string {
  return join(mount, posix.normalize(relative));
}
