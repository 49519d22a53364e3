/**
 * The rules file (TOML, default /etc/limiter/rules.toml): one table per rule,
 * with exactly one target (unit or cgroup: pids do not survive a reboot) and
 * the limits as on the command line. A bad file is refused whole, with the
 * line of what is wrong.
 */
import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { errnoCode, notFound, usageError } from '../errors.js';
import { isRuleName, RULE_NAME_FORMS } from '../instance.js';
import { makeLimit, NO_LIMIT, type Limits } from '../kernel/abi.js';
import { parseRate, parseSize } from '../units.js';

export const DEFAULT_RULES_FILE = '/etc/limiter/rules.toml';

export interface FileRule {
  name: string;
  target: { unit: string } | { cgroup: string };
  limits: Limits;
  /** where it is defined, for messages */
  line: number;
}

const KEYS = ['unit', 'cgroup', 'rate', 'bucket', 'ingress-rate', 'ingress-bucket'] as const;
type Key = (typeof KEYS)[number];

/** The line a rule's table (or one of its keys) starts on, found in the text: smol-toml keeps no positions. */
function lineOf(text: string, name: string, key?: string): number {
  const lines = text.split('\n');
  const quoted = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const header = new RegExp(`^\\s*\\[\\s*rule\\s*\\.\\s*("${quoted}"|'${quoted}'|${quoted})\\s*\\]`);
  let start = lines.findIndex((l) => header.test(l));
  if (start < 0) start = lines.findIndex((l) => l.includes(name));
  if (start < 0) return 1;
  if (key) {
    const keyLine = new RegExp(`^\\s*("${key}"|${key.replace(/-/g, '\\-')})\\s*=`);
    for (let i = start + 1; i < lines.length && !/^\s*\[/.test(lines[i]); i++) if (keyLine.test(lines[i])) return i + 1;
  }
  return start + 1;
}

/** Parses and checks a rules file's text; every problem is a usage error naming file and line. */
export function parseRules(path: string, text: string): FileRule[] {
  const fail = (line: number, what: string): never => {
    throw usageError('bad-rules-file', `${path}:${line}: ${what}`);
  };
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (err) {
    if (err instanceof TomlError) fail(err.line, err.message.split('\n')[0].replace(/^Invalid TOML document: /, ''));
    throw err;
  }
  for (const key of Object.keys(doc)) {
    if (key !== 'rule') fail(1, `unknown key '${key}': the file holds [rule.<name>] tables`);
  }
  const tables = doc.rule ?? {};
  if (typeof tables !== 'object' || Array.isArray(tables)) fail(1, "'rule' must be a table of [rule.<name>] tables");
  return Object.entries(tables as Record<string, unknown>).map(([name, value]) => {
    const at = (key?: string) => lineOf(text, name, key);
    if (!isRuleName(name)) fail(at(), `invalid rule name '${name}': expected ${RULE_NAME_FORMS}`);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(at(), `rule ${name} must be a table`);
    const table = value as Record<string, unknown>;
    for (const key of Object.keys(table)) {
      if (!(KEYS as readonly string[]).includes(key)) {
        fail(at(key), `rule ${name}: unknown key '${key}' (expected ${KEYS.join(', ')})`);
      }
      if (typeof table[key] !== 'string') fail(at(key), `rule ${name}: ${key} must be a string, e.g. "10mbit"`);
    }
    const get = (key: Key) => table[key] as string | undefined;
    const unit = get('unit');
    const cgroup = get('cgroup');
    if ((unit === undefined) === (cgroup === undefined)) {
      fail(at(unit !== undefined ? 'cgroup' : undefined), `rule ${name} needs exactly one target: unit or cgroup`);
    }
    const limit = (rateKey: Key, bucketKey: Key) => {
      const rate = get(rateKey);
      const bucket = get(bucketKey);
      if (rate === undefined) {
        if (bucket !== undefined) fail(at(bucketKey), `rule ${name}: ${bucketKey} needs ${rateKey}`);
        return NO_LIMIT;
      }
      try {
        return makeLimit(parseRate(rate, rateKey), bucket === undefined ? undefined : parseSize(bucket, bucketKey));
      } catch (err) {
        return fail(
          at(bucket !== undefined && !/rate/.test((err as Error).message) ? bucketKey : rateKey),
          (err as Error).message,
        );
      }
    };
    const limits = { egress: limit('rate', 'bucket'), ingress: limit('ingress-rate', 'ingress-bucket') };
    if (!limits.egress.rate && !limits.ingress.rate) fail(at(), `rule ${name} needs rate, ingress-rate or both`);
    return { name, target: unit !== undefined ? { unit } : { cgroup: cgroup! }, limits, line: at() };
  });
}

/** The rules of a file; a missing default file is no rules, a missing file named explicitly is an error. */
export function readRules(path: string, explicit: boolean): FileRule[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' && !explicit) return [];
    if (errnoCode(err) === 'ENOENT') throw notFound('no-rules-file', `no rules file at ${path}`);
    throw err;
  }
  return parseRules(path, text);
}
