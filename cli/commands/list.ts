import { preflight } from '../../lib/context.js';
import { parsePid } from '../../lib/kernel/proc.js';
import { missingPins } from '../../lib/kernel/attach.js';
import { inspectKernel, type KernelView } from '../../lib/kernel/inspect.js';
import { log } from '../../lib/log.js';
import { listRules } from '../../lib/ops/list.js';
import { formatBytes, formatRate } from '../../lib/units.js';
import type { GlobalOptions } from '../context.js';
import { ruleToJson } from '../describe.js';
import { DIRECTION_LABEL, table, writeJson } from '../output.js';

interface ListOptions {
  pid?: string;
  bpf?: boolean;
  json?: boolean;
}

export function run(options: ListOptions, { style }: GlobalOptions): void {
  const pid = options.pid === undefined ? undefined : parsePid(options.pid);
  const ctx = preflight();
  const rules = listRules(ctx, { pid }).map(ruleToJson);
  const kernel = options.bpf ? inspectKernel(ctx.instance) : null;
  if (rules.length > 0 && ctx.bpffsMounted && missingPins(ctx.instance).length > 0) {
    log.warn(
      `instance ${ctx.instance.name} is missing pinned programs, links or maps: limits may not be enforced; the next set, move or unset repairs it ('limiter doctor' tells more)`,
    );
  }

  if (options.json) {
    writeJson(kernel ? { rules, bpf: kernel } : { rules });
    return;
  }
  if (rules.length > 0) {
    const limit = (rate: number | null, bucket: number | null) =>
      rate === null ? '-' : `${formatRate(rate)}, bucket ${formatBytes(bucket!)}`;
    const traffic = (bytes: number, packets: number, paint = (s: string) => s) =>
      packets > 0 ? paint(`${formatBytes(bytes)} / ${packets} pkt`) : '-';
    const rows = rules.flatMap((r) => {
      const noLimit = r.rateBytesPerSec === null && r.ingressRateBytesPerSec === null;
      const directions: Array<[string, string, string, string]> = [
        [
          DIRECTION_LABEL.egress,
          limit(r.rateBytesPerSec, r.bucketBytes),
          traffic(r.passedBytes, r.passedPackets),
          traffic(r.droppedBytes, r.droppedPackets, style.red),
        ],
        [
          DIRECTION_LABEL.ingress,
          limit(r.ingressRateBytesPerSec, r.ingressBucketBytes),
          traffic(r.ingressPassedBytes, r.ingressPassedPackets),
          traffic(r.ingressDroppedBytes, r.ingressDroppedPackets, style.red),
        ],
      ];
      return directions.map(([direction, rate, passed, dropped], i) => [
        i === 0 ? r.name : '',
        direction,
        noLimit && i === 0 ? style.yellow('no limit in the kernel') : rate,
        passed,
        dropped,
        i === 0 ? r.pids.join(',') || '-' : '',
        i === 0 ? String(r.cgroupId) : '',
      ]);
    });
    process.stdout.write(table(['NAME', 'DIR', 'LIMIT', 'PASSED', 'DROPPED', 'PIDS', 'CGROUP ID'], rows, style.bold));
  } else if (!kernel) {
    process.stderr.write(`limiter: no rules in instance ${ctx.instance.name}\n`);
  }
  if (kernel) {
    process.stdout.write(describeKernel(kernel, rules));
  }
}

function describeKernel(kernel: KernelView, rules: ReturnType<typeof ruleToJson>[]): string {
  const lines: string[] = [];
  const link = kernel.link;
  lines.push(
    link
      ? `link     id ${link.id}: program ${link.programId} on cgroup ${link.target}, pinned at ${link.pinned}`
      : 'link     none pinned: nothing is attached by this instance',
  );
  for (const t of kernel.tcxLinks) {
    lines.push(`link     id ${t.id}: program ${t.programId} on interface ${t.target} (tcx), pinned at ${t.pinned}`);
  }
  for (const p of kernel.programs) {
    const average = p.runCount > 0 ? `, ${Math.round(p.runTimeNs / p.runCount)} ns per run` : '';
    lines.push(
      `program  id ${p.id} ${p.name}: attached to the instance cgroup (${p.hook}), ${p.runCount} runs${average}`,
    );
  }
  for (const m of kernel.maps) {
    lines.push(`map      id ${m.id} ${m.name}: max ${m.maxEntries} entries, pinned at ${m.pinned}`);
  }
  for (const r of rules) {
    lines.push(`entry    cgroup ${r.cgroupId} (${r.name}): slot ${r.slot ?? '-'}, tokens ${r.tokensBytes ?? '-'} B`);
  }
  return lines.join('\n') + '\n';
}
