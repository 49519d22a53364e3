import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeRule, encodeRule, LAYOUT, MAPS, MAX_RULES, NO_SLOT, PROGRAMS, SK_OWNED } from '../../lib/kernel/abi.js';
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

  it('uses the names, limits and flags the header defines', () => {
    const programs = ['EGRESS', 'INGRESS', 'SOCKOPS', 'TC_EGRESS', 'TC_INGRESS'];
    const maps = ['RULES', 'STATE', 'ATTACH', 'SOCKETS', 'CONFIG', 'TALLY'];
    expect(programs.map((p) => define(`LIMITER_PROG_${p}`))).toEqual(PROGRAMS.map((p) => JSON.stringify(p)));
    expect(maps.map((m) => define(`LIMITER_MAP_${m}`))).toEqual(MAPS.map((m) => JSON.stringify(m)));
    expect(Number(define('LIMITER_MAX_RULES'))).toBe(MAX_RULES);
    expect(Number(define('LIMITER_NO_SLOT')?.replace(/U$/, ''))).toBe(NO_SLOT);
    expect(Number(define('LIMITER_SK_OWNED'))).toBe(SK_OWNED);
  });

  it('round-trips a rule value', () => {
    const rule = {
      limits: { egress: makeLimit(1048576, 65536), ingress: makeLimit(125000, 125000) },
      cgroupId: 77,
    };
    expect(decodeRule(encodeRule(rule))).toEqual(rule);
  });
});
