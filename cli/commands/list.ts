import { preflight } from '../../lib/context.js';
import { missingPins } from '../../lib/kernel/attach.js';
import { inspectKernel, type KernelView } from '../../lib/kernel/inspect.js';
import { missingRuleLinks } from '../../lib/kernel/links.js';
import { log } from '../../lib/log.js';
import { listRules, type RuleInfo } from '../../lib/ops/list.js';
import { hooksFor } from '../../lib/kernel/pins.js';
import { formatBytes, formatRate } from '../../lib/units.js';
import type { GlobalOptions } from '../context.js';
import { describeTarget, ruleToJson } from '../describe.js';
import { DIRECTION_LABEL, table, writeJson } from '../output.js';
import { targetFromOptions, type TargetOptions } from '../target.js';

interface ListOptions extends TargetOptions {
  bpf?: boolean;
  json?: boolean;
}

type RuleJson = ReturnType<typeof ruleToJson>;

export function run(options: ListOptions, { style }: GlobalOptions): void {
  const filter = targetFromOptions('list', options, false) ?? undefined;
  const ctx = preflight();
  const infos = listRules(ctx, filter);
  const rules = infos.map(ruleToJson);
  const kernel = options.bpf ? inspectKernel(ctx.instance) : null;
  const unenforced =
    missingPins(ctx.instance).length > 0 ||
    infos.some((r) => r.value && missingRuleLinks(ctx.instance, r.cgroupId, hooksFor(r.value.limits)).length > 0);
  if (rules.length > 0 && ctx.bpffsMounted && unenforced) {
    log.warn(
      `instance ${ctx.instance.name} is missing pinned programs, links or maps: limits may not be enforced; the next set, move or unset repairs it ('limiter doctor' tells more)`,
    );
  }

  if (options.json) {
    writeJson(kernel ? { rules, bpf: kernel } : { rules });
    return;
  }
  if (rules.length > 0) process.stdout.write(ruleTable(infos, rules, style));
  else if (!kernel) process.stderr.write(`limiter: no rules in instance ${ctx.instance.name}\n`);
  if (kernel) process.stdout.write(describeKernel(kernel, rules));
}

/** Two rows per rule, up and down. */
function ruleTable(infos: RuleInfo[], rules: RuleJson[], style: GlobalOptions['style']): string {
  const limit = (rate: number | null, bucket: number | null) =>
    rate === null ? '-' : `${formatRate(rate)}, bucket ${formatBytes(bucket!)}`;
  const traffic = (bytes: number, packets: number, paint = (s: string) => s) =>
    packets > 0 ? paint(`${formatBytes(bytes)} / ${packets} pkt`) : '-';
  const rows = rules.flatMap((r, index) => {
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
      i === 0 ? describeTarget(infos[index].target) : '',
      direction,
      noLimit && i === 0 ? style.yellow('no limit in the kernel') : rate,
      passed,
      dropped,
      i === 0 ? r.pids.join(',') || '-' : '',
      i === 0 ? String(r.cgroupId) : '',
    ]);
  });
  return table(['NAME', 'TARGET', 'DIR', 'LIMIT', 'PASSED', 'DROPPED', 'PIDS', 'CGROUP ID'], rows, style.bold);
}

function describeKernel(kernel: KernelView, rules: RuleJson[]): string {
  const lines: string[] = [];
  if (kernel.links.length === 0 && kernel.tcxLinks.length === 0) {
    lines.push('link     none pinned: nothing is attached by this instance');
  }
  for (const l of kernel.links) {
    lines.push(`link     id ${l.id}: program ${l.programId} on cgroup ${l.target} (${l.hook}), pinned at ${l.pinned}`);
  }
  for (const t of kernel.tcxLinks) {
    lines.push(
      `link     id ${t.id}: program ${t.programId} on interface ${t.target} (tcx ${t.hook}), pinned at ${t.pinned}`,
    );
  }
  for (const p of kernel.programs) {
    const average = p.runCount > 0 ? `, ${Math.round(p.runTimeNs / p.runCount)} ns per run` : '';
    lines.push(`program  id ${p.id} ${p.name}: ${p.runCount} runs${average}, pinned at ${p.pinned}`);
  }
  for (const m of kernel.maps) {
    lines.push(`map      id ${m.id} ${m.name}: max ${m.maxEntries} entries, pinned at ${m.pinned}`);
  }
  for (const r of rules) {
    lines.push(`entry    cgroup ${r.cgroupId} (${r.name}): slot ${r.slot ?? '-'}, tokens ${r.tokensBytes ?? '-'} B`);
  }
  return lines.join('\n') + '\n';
}
