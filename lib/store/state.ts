/**
 * The runtime state file: what the kernel cannot tell. Limits, slots and
 * counters live in the maps; this file keeps which cgroup each rule was made
 * as, where each process came from, and the sockets adopted by cookie.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { errnoCode, operationFailed } from '../errors.js';

/** A process moved into a rule, and where it came from. */
export interface MemberRecord {
  /** cgroup path relative to the cgroup2 mount, e.g. "/user.slice/session-1.scope" */
  origin: string;
  /** /proc/<pid>/stat start time: tells this process from a later one with the same pid */
  startTime: number;
  /** cookies of the sockets it had when it joined: the sockets map points them at the rule */
  sockets: string[];
}

export interface RuleRecord {
  /** the id of the cgroup made for the rule: a cgroup of the same name made later is another */
  cgroupId: number;
  members: Record<string, MemberRecord>;
  /** cookies of sockets of former members, which the sockets map exempts from the rule */
  released: string[];
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
    throw operationFailed('corrupt-state', `the state file ${file} is not valid`, {
      hint: "'limiter purge' removes every rule and starts afresh",
    });
  }
  return state;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isCookieList = (value: unknown) =>
  Array.isArray(value) && value.every((c) => typeof c === 'string' && /^\d+$/.test(c));

function isMember(value: unknown): value is MemberRecord {
  return (
    isRecord(value) &&
    typeof value.origin === 'string' &&
    Number.isInteger(value.startTime) &&
    isCookieList(value.sockets)
  );
}

function isRule(value: unknown): value is RuleRecord {
  return (
    isRecord(value) &&
    Number.isInteger(value.cgroupId) &&
    isRecord(value.members) &&
    Object.values(value.members).every(isMember) &&
    isCookieList(value.released)
  );
}

/** Version 1 also kept each rule's limits and slot, which the maps hold: dropped on reading. */
function upgrade(value: Record<string, unknown>): Record<string, unknown> {
  if (value.version !== 1 || !isRecord(value.rules)) return value;
  const rules = Object.fromEntries(
    Object.entries(value.rules).map(([name, rule]) => {
      if (!isRecord(rule)) return [name, rule];
      const { cgroupId, members, released } = rule;
      return [name, { cgroupId, members, released }];
    }),
  );
  return { ...value, version: 2, rules };
}

export function parseState(text: string): State | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(value)) return null;
  value = upgrade(value);
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
