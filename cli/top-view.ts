/** How `limiter top` draws a frame: a row per rule and direction, with a bar of rate against limit. */
import { DIRECTIONS } from '../lib/kernel/abi.js';
import type { DirectionRate, RuleRate } from '../lib/ops/top.js';
import { formatBytes } from '../lib/units.js';
import { DIRECTION_LABEL, table, type Style } from './output.js';

const BAR = 20;

function bar(rate: DirectionRate, style: Style): string {
  if (!rate.limit || rate.bytesPerSec === null) return '';
  const share = Math.min(1, rate.bytesPerSec / rate.limit);
  const filled = Math.round(share * BAR);
  const text = `[${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}]`;
  // green under the limit, yellow near it, red when it drops hard
  const drop = rate.dropPercent ?? 0;
  const paint = drop > 5 ? style.red : share >= 0.9 ? style.yellow : style.green;
  return paint(text);
}

const perSecond = (bytes: number | null) => (bytes === null ? '…' : `${formatBytes(Math.round(bytes))}/s`);

export function renderFrame(rates: RuleRate[], style: Style, title: string): string {
  const rows = rates.flatMap((rule) =>
    DIRECTIONS.map((dir, i) => {
      const rate = rule[dir];
      return [
        i === 0 ? rule.name : '',
        i === 0 ? rule.pids.join(',') || '-' : '',
        DIRECTION_LABEL[dir],
        rate.limit ? `${formatBytes(rate.limit)}/s` : '-',
        perSecond(rate.bytesPerSec),
        bar(rate, style),
        rate.dropPercent === null || !rate.limit ? '' : `${rate.dropPercent.toFixed(1)} %`,
      ];
    }),
  );
  const body =
    rates.length > 0
      ? table(['NAME', 'PIDS', 'DIR', 'LIMIT', 'RATE', 'USE', 'DROPPED'], rows, style.bold)
      : 'no rules\n';
  return `${style.bold(title)}\n\n${body}`;
}

/** The JSON line of one interval. */
export function frameJson(rates: RuleRate[], time: Date) {
  const direction = (rate: DirectionRate) => ({
    limitBytesPerSec: rate.limit || null,
    bucketBytes: rate.limit ? rate.bucket : null,
    bytesPerSec: rate.bytesPerSec,
    dropPercent: rate.dropPercent,
  });
  return {
    time: time.toISOString(),
    rules: rates.map((r) => ({
      name: r.name,
      cgroupId: r.cgroupId,
      pids: r.pids,
      egress: direction(r.egress),
      ingress: direction(r.ingress),
    })),
  };
}
