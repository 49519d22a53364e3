import { describe, expect, it } from 'vitest';
import { frameJson, renderFrame } from '../../cli/top-view.js';
import { makeStyle } from '../../cli/output.js';
import { NO_LIMIT, type Counters, type StateValue } from '../../lib/kernel/abi.js';
import { counterDelta, ratesBetween, type RuleSample, type Sample } from '../../lib/ops/top.js';
import { makeLimit } from '../../lib/kernel/abi.js';

const counters = (passedBytes: bigint, passedPackets = 0n, droppedPackets = 0n): Counters => ({
  emptyAtNs: 0n,
  passedBytes,
  passedPackets,
  droppedBytes: 0n,
  droppedPackets,
});
const state = (egress: Counters, ingress = counters(0n)): StateValue => ({ egress, ingress });
const rule = (name: string, cgroupId: number, s: StateValue): RuleSample => ({
  name,
  cgroupId,
  pids: [42],
  limits: { egress: makeLimit(1000), ingress: NO_LIMIT },
  counters: s,
});
const sample = (seconds: number, rules: RuleSample[]): Sample => ({ at: BigInt(seconds * 1e9), rules });

describe('rates from counter deltas', () => {
  it('divides the bytes passed by the time between samples', () => {
    const rates = ratesBetween(
      sample(10, [rule('web', 7, state(counters(1000n, 10n)))]),
      sample(12, [rule('web', 7, state(counters(3000n, 30n, 10n)))]),
    );
    expect(rates[0].egress).toMatchObject({ limit: 1000, bytesPerSec: 1000, dropPercent: (10 * 100) / 30 });
    expect(rates[0].ingress).toMatchObject({ limit: 0, bytesPerSec: 0, dropPercent: 0 });
  });

  it('survives a u64 counter that wrapped', () => {
    const max = (1n << 64n) - 1n;
    expect(counterDelta(max - 99n, 100n)).toBe(200n);
    const rates = ratesBetween(
      sample(0, [rule('web', 7, state(counters(max - 499n)))]),
      sample(1, [rule('web', 7, state(counters(500n)))]),
    );
    expect(rates[0].egress.bytesPerSec).toBe(1000);
  });

  it('has no rate for a rule made again under the same name, nor for a new one', () => {
    const rates = ratesBetween(
      sample(0, [rule('web', 7, state(counters(5000n)))]),
      sample(1, [rule('web', 8, state(counters(10n))), rule('db', 9, state(counters(1n)))]),
    );
    expect(rates.map((r) => r.egress.bytesPerSec)).toEqual([null, null]);
  });

  it('drops rules that vanished', () => {
    expect(ratesBetween(sample(0, [rule('web', 7, state(counters(0n)))]), sample(1, []))).toEqual([]);
  });
});

describe('frames', () => {
  const rates = ratesBetween(
    sample(0, [rule('web', 7, state(counters(0n)))]),
    sample(1, [rule('web', 7, state(counters(950n, 95n, 5n)))]),
  );

  it('draws a plain ASCII bar without colour', async () => {
    const frame = renderFrame(rates, await makeStyle(false), 'title');
    expect(frame).toContain('[###################.]');
    expect(frame).toMatch(/^web +42 +up +1000 B\/s +950 B\/s/m);
    expect(frame).not.toContain('\x1b[');
  });

  it('colours the bar on a terminal: green under, yellow near the limit, red when dropping hard', async () => {
    const style = await makeStyle(true, {}, true);
    const at = (passed: bigint, dropped: bigint) =>
      renderFrame(
        ratesBetween(
          sample(0, [rule('web', 7, state(counters(0n)))]),
          sample(1, [rule('web', 7, state(counters(passed, 100n, dropped)))]),
        ),
        style,
        't',
      );
    expect(at(500n, 0n)).toContain(style.green('[##########..........]'));
    expect(rates[0].egress.dropPercent).toBe(5);
    expect(renderFrame(rates, style, 't')).toContain(style.yellow('[###################.]'));
    expect(at(990n, 20n)).toContain(style.red('[####################]'));
  });

  it('has a JSON line with both directions', () => {
    const json = frameJson(rates, new Date(0));
    expect(json).toEqual({
      time: '1970-01-01T00:00:00.000Z',
      rules: [
        {
          name: 'web',
          cgroupId: 7,
          pids: [42],
          egress: { limitBytesPerSec: 1000, bucketBytes: 1000, bytesPerSec: 950, dropPercent: 5 },
          ingress: { limitBytesPerSec: null, bucketBytes: null, bytesPerSec: 0, dropPercent: 0 },
        },
      ],
    });
  });
});
