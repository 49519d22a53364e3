import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeRule, encodeRule, LAYOUT, MAP_RULES, MAP_STATE, MAX_RULES, PROG_EGRESS } from '../../lib/kernel/abi.js';
import { bpfObjectPath, packageRoot } from '../../lib/instance.js';
import { btfStructLayout } from '../../lib/kernel/bpf.js';
import { makeLimit } from '../../lib/kernel/abi.js';

const objectPath = bpfObjectPath({});
const header = readFileSync(join(packageRoot(), 'bpf', 'limiter.h'), 'utf8');
const define = (name: string) => new RegExp(`#define ${name}\\s+(\\S+)`).exec(header)?.[1];

describe('lib/abi.ts mirrors bpf/limiter.h', () => {
  it.each(Object.keys(LAYOUT))('struct %s has the size and offsets of the BTF in the built object', (name) => {
    const btf = btfStructLayout(objectPath, name);
    expect(btf, `struct ${name} in ${objectPath}`).not.toBeNull();
    expect(btf).toEqual(LAYOUT[name as keyof typeof LAYOUT]);
  });

  it('uses the names and limits the header defines', () => {
    expect(define('LIMITER_PROG_EGRESS')).toBe(JSON.stringify(PROG_EGRESS));
    expect(define('LIMITER_MAP_RULES')).toBe(JSON.stringify(MAP_RULES));
    expect(define('LIMITER_MAP_STATE')).toBe(JSON.stringify(MAP_STATE));
    expect(Number(define('LIMITER_MAX_RULES'))).toBe(MAX_RULES);
  });

  it('round-trips a rule value', () => {
    const rule = {
      limits: { egress: makeLimit(1048576, 65536), ingress: makeLimit(125000, 125000) },
      slot: 77,
    };
    expect(decodeRule(encodeRule(rule))).toEqual(rule);
  });
});
