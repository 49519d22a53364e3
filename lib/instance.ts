import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { usageError } from './errors.js';

export const DEFAULT_INSTANCE = 'speed_limiter';
export const BPFFS_ROOT = '/sys/fs/bpf';
export const RUN_ROOT = '/run';
export const OBJECT_FILE = 'limiter.bpf.o';

/** Instance names become directory names in cgroupfs, bpffs and /run. */
export const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
export const NAME_FORMS = '1 to 64 letters, digits, _ or -, not starting with -';
/** Rule names become cgroup directory names (pid rules); units' names are rule names too (web.service). */
const RULE_NAME_PATTERN = /^(?!cgroup\.)[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/;
export const RULE_NAME_FORMS = '1 to 64 letters, digits, _ . @ or -, starting with a letter, digit or _, not cgroup.*';

/** Everything one instance owns, by path. */
export interface Instance {
  name: string;
  /** <cgroup2 mount>/<instance>: the program is attached here, rules are its children */
  cgroupDir: string;
  bpffsDir: string;
  runDir: string;
  stateFile: string;
}

export function instanceName(env: NodeJS.ProcessEnv = process.env): string {
  const name = env.LIMITER_INSTANCE ?? DEFAULT_INSTANCE;
  if (!NAME_PATTERN.test(name)) {
    throw usageError('bad-instance', `invalid LIMITER_INSTANCE '${name}': expected ${NAME_FORMS}`);
  }
  return name;
}

export function instancePaths(name: string, cgroupMount: string): Instance {
  const runDir = join(RUN_ROOT, name);
  return {
    name,
    cgroupDir: join(cgroupMount, name),
    bpffsDir: join(BPFFS_ROOT, name),
    runDir,
    stateFile: join(runDir, 'state.json'),
  };
}

/** The directory holding package.json: the checkout, or /usr/lib/speed-limiter when installed. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

/** LIMITER_BPF_OBJECT, else the object built in (or shipped with) this package. */
export function bpfObjectPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.LIMITER_BPF_OBJECT || join(packageRoot(), 'bpf', OBJECT_FILE);
}

export const isRuleName = (name: string) => RULE_NAME_PATTERN.test(name);

export function validateRuleName(name: string): string {
  if (!isRuleName(name)) throw usageError('bad-name', `invalid rule name '${name}': expected ${RULE_NAME_FORMS}`);
  return name;
}
