/**
 * The runtime state file: what the kernel cannot tell. Limits, slots and
 * counters live in the maps; this file keeps what each rule limits, which
 * cgroup that was when the rule was made, where each process came from, and
 * how many of its sockets were given to the rule.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { errnoCode, operationFailed } from '../errors.js';

/** What a rule limits: its own cgroup, which processes are moved into, or a cgroup where it is. */
export type RuleTarget =
  | { kind: 'pid' }
  | { kind: 'cgroup'; path: string }
  | { kind: 'unit'; unit: string; path: string }
  | { kind: 'container'; container: string; path: string };

export type TargetKind = RuleTarget['kind'];

/** A process moved into a rule, and where it came from. */
export interface MemberRecord {
  /** cgroup path relative to the cgroup2 mount, e.g. "/user.slice/session-1.scope" */
  origin: string;
  /** /proc/<pid>/stat start time: tells this process from a later one with the same pid */
  startTime: number;
  /** its sockets given to the rule when it joined: connections and listeners */
  adopted: { sockets: number; listeners: number };
}

/** Who made a rule: `set` (by hand), or `apply` from the rules file, which never touches the others. */
export type RuleSource = 'cli' | 'file';

export interface RuleRecord {
  target: RuleTarget;
  source: RuleSource;
  /** the id of the target cgroup when the rule was made: a cgroup made again under that path is another */
  cgroupId: number;
  members: Record<string, MemberRecord>;
  /** some socket was given to this rule, or taken from it: its programs must look at socket ownership */
  owned: boolean;
}

export interface State {
  version: 2;
  /** the rule most recently set */
  lastRule: string | null;
  rules: Record<string, RuleRecord>;
}

export const emptyState = (): State => ({ version: 2, lastRule: null, rules: {} });

export function loadState(file: string): State {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return emptyState();
    throw err;
  }
  const state = parseState(text);
  if (!state) {
    throw operationFailed('corrupt-state', `the state file ${file} is not valid, or from another version of limiter`, {
      hint: "'limiter purge' removes every rule and starts afresh",
    });
  }
  return state;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isCount = (value: unknown) => Number.isInteger(value) && (value as number) >= 0;

function isMember(value: unknown): value is MemberRecord {
  return (
    isRecord(value) &&
    typeof value.origin === 'string' &&
    Number.isInteger(value.startTime) &&
    isRecord(value.adopted) &&
    isCount(value.adopted.sockets) &&
    isCount(value.adopted.listeners)
  );
}

function isTarget(value: unknown): value is RuleTarget {
  if (!isRecord(value)) return false;
  const path = typeof value.path === 'string' && value.path.startsWith('/');
  switch (value.kind) {
    case 'pid':
      return true;
    case 'cgroup':
      return path;
    case 'unit':
      return path && typeof value.unit === 'string';
    case 'container':
      return path && typeof value.container === 'string';
    default:
      return false;
  }
}

function isRule(value: unknown): value is RuleRecord {
  return (
    isRecord(value) &&
    isTarget(value.target) &&
    (value.source === 'cli' || value.source === 'file') &&
    Number.isInteger(value.cgroupId) &&
    isRecord(value.members) &&
    Object.values(value.members).every(isMember) &&
    typeof value.owned === 'boolean'
  );
}

export function parseState(text: string): State | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(value) || value.version !== 2 || !isRecord(value.rules)) return null;
  if (!(value.lastRule === null || typeof value.lastRule === 'string')) return null;
  if (!Object.values(value.rules).every(isRule)) return null;
  return value as unknown as State;
}

/** Writes the whole file or nothing: a temporary file, fsync, rename. */
export function saveState(file: string, state: State): void {
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w', 0o644);
  try {
    writeSync(fd, JSON.stringify(state, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}
