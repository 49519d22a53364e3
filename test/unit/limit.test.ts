import { describe, expect, it } from 'vitest';
import { thrown } from '../harness/thrown.js';
import { tokens } from '../../cli/describe.js';
import { makeStyle, table } from '../../cli/output.js';
import { hasPrivileges } from '../../lib/context.js';
import { validateRuleName } from '../../lib/instance.js';
import { makeLimit } from '../../lib/kernel/abi.js';

describe('makeLimit', () => {
  it('defaults the bucket to one second of rate', () => {
    expect(makeLimit(1048576)).toEqual({ rate: 1048576, bucket: 1048576, burstNs: 1_000_000_000n });
  });
  it('keeps burst_ns at least 1 ns', () => {
    expect(makeLimit(2 ** 40, 1).burstNs).toBe(1n);
  });
  it('refuses a bucket that lasts beyond the time arithmetic', () => {
    expect(thrown(() => makeLimit(1, 2 ** 40))).toMatchObject({ exitCode: 2 });
  });
});

describe('tokens', () => {
  const limit = makeLimit(1000, 500);
  it('caps at the bucket and goes negative by the debt', () => {
    expect(tokens(limit, 0n, 10_000_000_000n)).toBe(500);
    expect(tokens(limit, 10_000_000_000n, 10_000_000_000n)).toBe(0);
    expect(tokens(limit, 11_000_000_000n, 10_000_000_000n)).toBe(-1000);
  });
});

describe('rule names', () => {
  it.each(['web', 'pid-1234', 'A_b-9'])('accepts %s', (name) => expect(validateRuleName(name)).toBe(name));
  it.each(['', '-x', 'a b', 'a/b', '..', 'cgroup.procs', 'x'.repeat(65)])('rejects %j', (name) =>
    expect(thrown(() => validateRuleName(name))).toMatchObject({ exitCode: 2 }),
  );
});

describe('output', () => {
  it('has no colour under NO_COLOR, --no-color or without a terminal', async () => {
    for (const style of [
      await makeStyle(true, { NO_COLOR: '1' }, true),
      await makeStyle(false, {}, true),
      await makeStyle(true, {}, false),
    ]) {
      expect(style.red('x')).toBe('x');
    }
  });
  it('colours on a terminal', async () => {
    expect((await makeStyle(true, { FORCE_COLOR: '1' }, true)).red('x')).not.toBe('x');
  });
  it('aligns columns', () => {
    expect(table(['A', 'BB'], [['xyz', '1']])).toBe('A    BB\nxyz  1\n');
  });
});

describe('privileges', () => {
  it('needs CAP_SYS_ADMIN and CAP_NET_ADMIN', () => {
    expect(hasPrivileges(0n)).toBe(false);
    expect(hasPrivileges((1n << 21n) | (1n << 12n))).toBe(true);
    expect(hasPrivileges(1n << 21n)).toBe(false);
  });
});
