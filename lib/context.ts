/**
 * The context every operation runs in, made by one check before privileged
 * work (preflight); each failure is one clear error.
 */
import { accessSync, constants as fsConstants, existsSync, readFileSync } from 'node:fs';
import { notPermitted, unsupported } from './errors.js';
import { bpfObjectPath, BPFFS_ROOT, instanceName, instancePaths, type Instance } from './instance.js';
import { findCgroup2Mount, isMounted, readMounts } from './kernel/cgroup.js';
import { mountBpffs } from './kernel/libc.js';
import { log } from './log.js';

export interface Context {
  instance: Instance;
  cgroupMount: string;
  objectPath: string;
  lockTimeoutMs: number;
  bpffsMounted: boolean;
}

export interface Needs {
  /** the BPF object must exist (commands that may load it) */
  object?: boolean;
  /** mount bpffs when it is missing (commands that pin) */
  mountBpffs?: boolean;
}

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_BPF = 39;

/** Effective capabilities from /proc/self/status. */
function effectiveCapabilities(): bigint {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('CapEff:'));
  return line ? BigInt('0x' + line.slice(7).trim()) : 0n;
}

export function hasPrivileges(caps: bigint = effectiveCapabilities()): boolean {
  const has = (cap: number) => (caps & (1n << BigInt(cap))) !== 0n;
  return has(CAP_SYS_ADMIN) && has(CAP_NET_ADMIN) && (has(CAP_BPF) || has(CAP_SYS_ADMIN));
}

export function preflight(needs: Needs = {}, env: NodeJS.ProcessEnv = process.env): Context {
  const name = instanceName(env);
  if (!hasPrivileges()) {
    throw notPermitted('not-root', 'limiter needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_BPF)', {
      hint: 'run it with sudo',
    });
  }
  const mounts = readMounts();
  const cgroupMount = findCgroup2Mount(mounts);
  let bpffsMounted = isMounted(BPFFS_ROOT, 'bpf', mounts);
  if (!bpffsMounted && needs.mountBpffs) {
    if (!existsSync(BPFFS_ROOT)) {
      throw unsupported('no-bpffs', `${BPFFS_ROOT} does not exist`, { hint: 'this kernel lacks BPF support' });
    }
    mountBpffs(BPFFS_ROOT);
    log.info(`mounted bpffs at ${BPFFS_ROOT}`);
    bpffsMounted = true;
  }
  const objectPath = bpfObjectPath(env);
  if (needs.object) {
    try {
      accessSync(objectPath, fsConstants.R_OK);
    } catch {
      throw unsupported('no-object', `BPF object ${objectPath} not found`, {
        hint: env.LIMITER_BPF_OBJECT
          ? 'LIMITER_BPF_OBJECT names a file that does not exist'
          : "build it with 'make build', or reinstall the speed-limiter package",
      });
    }
  }
  return {
    instance: instancePaths(name, cgroupMount),
    cgroupMount,
    objectPath,
    lockTimeoutMs: lockTimeoutMs(env),
    bpffsMounted,
  };
}

/** LIMITER_LOCK_TIMEOUT, seconds, as milliseconds (default 10 s). */
export function lockTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const seconds = Number(env.LIMITER_LOCK_TIMEOUT ?? '10');
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 10_000;
}
