/** The bench's tables, in Markdown. */
import type { AccuracyResult } from './accuracy.js';
import type { RttResult } from './rtt.js';
import type { Results } from './bench.js';

const MBIT = 1_000_000;
const fixed = (n: number, digits = 3) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

function table(header: string[], rows: string[][]): string {
  return (
    [
      `| ${header.join(' | ')} |`,
      `|${header.map(() => '---').join('|')}|`,
      ...rows.map((r) => `| ${r.join(' | ')} |`),
    ].join('\n') + '\n'
  );
}

function rate(bits: number): string {
  return bits >= 1000 * MBIT ? `${bits / 1000 / MBIT} Gbit/s` : `${bits / MBIT} Mbit/s`;
}

/** One row per case, limiter and tbf side by side. */
function accuracyRows(results: AccuracyResult[]): string[][] {
  const key = (r: AccuracyResult) =>
    `${r.target ?? ''} ${r.direction ?? 'egress'} ${r.traffic} ${r.flows} ${r.rateBits} ${r.bucketSeconds}`;
  const tbf = new Map(results.filter((r) => r.limiter === 'tbf').map((r) => [key(r), r]));
  return results
    .filter((r) => r.limiter === 'limiter')
    .map((r) => {
      const peer = tbf.get(key(r));
      const better = peer ? Math.abs(1 - r.steady) <= Math.abs(1 - peer.steady) + 0.005 : true;
      return [
        [r.traffic, r.direction === 'ingress' ? 'ingress' : '', r.target ? `(${r.target})` : '']
          .filter(Boolean)
          .join(' '),
        String(r.flows),
        rate(r.rateBits),
        `${r.bucketSeconds * 1000} ms`,
        `${fixed(r.steady)}${better ? '' : ' ⚠'}`,
        peer ? fixed(peer.steady) : '-',
        fixed(r.peakWindow),
        peer ? fixed(peer.peakWindow) : '-',
        r.retransmits === null ? '-' : String(r.retransmits),
        peer?.retransmits == null ? '-' : String(peer.retransmits),
        `${r.errors}/${peer?.errors ?? '-'}`,
      ];
    });
}

/** One row per case, limiter and its peer side by side. */
function rttRows(results: RttResult[]): string[][] {
  const key = (r: RttResult) =>
    `${r.rttMs} ${r.direction} ${r.running} ${r.traffic} ${r.flows} ${r.rateBits} ${r.bucketSeconds}`;
  const peers = new Map(results.filter((r) => r.limiter === 'peer').map((r) => [key(r), r]));
  return results
    .filter((r) => r.limiter === 'limiter')
    .map((r) => {
      const peer = peers.get(key(r));
      return [
        `${r.rttMs} ms`,
        r.running ? `${r.direction}, running` : r.direction,
        r.traffic,
        String(r.flows),
        rate(r.rateBits),
        `${r.bucketSeconds * 1000} ms`,
        fixed(r.steady),
        peer ? fixed(peer.steady) : '-',
        `${fixed(r.retransmitPercent, 2)} %`,
        peer ? `${fixed(peer.retransmitPercent, 2)} %` : '-',
        `${fixed(r.loadedRttMs, 1)} ms`,
        peer ? `${fixed(peer.loadedRttMs, 1)} ms` : '-',
      ];
    });
}

export function markdownReport(results: Results, seconds: number): string {
  const out: string[] = [];
  out.push(`# limiter bench (${results.mode})\n`);
  out.push(
    `${results.date}, kernel ${results.kernel}, ${results.seconds} s. Produced by \`make bench${results.mode === 'quick' ? ' QUICK=1' : ''}\`.\n`,
  );
  out.push(`## Accuracy: limiter vs tc tbf\n`);
  out.push(
    `iperf3 over a veth pair between two network namespaces, ${seconds} s of steady state per run (after the first second; after the third for 1 s buckets); UDP offers 3× the rate. *steady*: receiver goodput in steady state ÷ rate. ` +
      `*peak*: the largest 1 s receiver window ÷ (bucket + rate·1 s). ⚠: limiter's error is larger than tbf's. tbf: same rate and burst, latency 50 ms.\n`,
  );
  out.push(
    table(
      [
        'traffic',
        'flows',
        'rate',
        'bucket',
        'limiter steady',
        'tbf steady',
        'limiter peak',
        'tbf peak',
        'limiter retrans',
        'tbf retrans',
        'app errors (l/t)',
      ],
      accuracyRows(results.accuracy),
    ),
  );
  out.push(`## Real round-trip times\n`);
  out.push(
    "iperf3 through a delay line (two TUN devices in two namespaces, MTU 1500, no offloads); the round trip is the line's. " +
      '*goodput*: steady-state receiver goodput ÷ rate. *resent*: segments the sender sent again ÷ segments it sent. ' +
      "*RTT*: median ping beside the transfer. The peer has the same rate and burst: tbf on the client's egress for uploads, " +
      'ifb + tbf on its ingress for downloads (a queue, latency 50 ms). *running*: limited 2 s after it started, ' +
      'measured from a second after that, resent counted from the limit on.\n',
  );
  out.push(
    table(
      [
        'RTT',
        'direction',
        'traffic',
        'flows',
        'rate',
        'bucket',
        'goodput',
        'peer goodput',
        'resent',
        'peer resent',
        'RTT under load',
        'peer RTT',
      ],
      rttRows(results.rtt),
    ),
  );
  out.push(`## Downloads on loopback\n`);
  out.push(
    "curl downloading from python's http.server on loopback (µs round trip: no window can limit; segments of a quarter of the bucket, 64 KiB at most, design.md K34), " +
      'limited with `--ingress-rate`; goodput ÷ rate after the first 2 s, over 5 s.\n',
  );
  out.push(
    table(
      ['rate', 'bucket', 'goodput'],
      results.loopback.map((r) => [rate(r.rateBits), `${r.bucketSeconds * 1000} ms`, fixed(r.steady)]),
    ),
  );
  out.push(`## Latency under load\n`);
  out.push(
    'RTT of a 64-byte request/response flow (20/s) beside a bulk TCP cubic flow, both under the same limit (bucket 100 ms).\n',
  );
  out.push(
    table(
      ['limit', 'rate', 'median RTT', 'p99 RTT', 'samples'],
      results.latency.map((l) => [
        l.limiter,
        rate(l.rateBits),
        `${fixed(l.medianMs, 2)} ms`,
        `${fixed(l.p99Ms, 2)} ms`,
        String(l.samples),
      ]),
    ),
  );
  out.push(`## Cost per skb\n`);
  out.push(
    "Run time per skb (BPF run-time statistics) of limiter_egress, and of a trivial `return 1` program on the same skbs (UDP, MTU-sized datagrams; the rule allows 100 Mbit/s). A process outside the instance's cgroups never runs the program, nor does a rule's traffic in a direction it does not limit (no program is attached for it): their cost is 0.\n",
  );
  out.push(
    table(
      ['case', 'rules', 'limiter ns/skb', 'trivial ns/skb', 'ratio'],
      [...results.cost, ...results.scale.map((s) => s.cost)].map((c) => [
        c.case,
        String(c.rules),
        fixed(c.nsPerSkb, 0),
        fixed(c.trivialNsPerSkb, 0),
        fixed(c.ratio, 2),
      ]),
    ),
  );
  out.push(`## Unlimited loopback throughput\n`);
  out.push(
    table(
      ['case', 'Gbit/s'],
      results.throughput.map((t) => [t.case, fixed(t.gbitPerSec, 2)]),
    ),
  );
  out.push(`## CLI latency\n`);
  out.push(
    table(
      ['command', 'median', "ratio to node -e ''"],
      results.cli.map((c) => [c.command, `${fixed(c.medianMs, 0)} ms`, fixed(c.ratioToNode, 2)]),
    ),
  );
  out.push(`## Scale\n`);
  out.push(
    table(
      ['rules', 'limiter list', 'limiter set (one more)', 'top refresh', 'limited ns/skb', 'vs 1 rule'],
      results.scale.map((s) => {
        const one = results.cost.find((c) => c.case === 'limited cgroup, over its rate');
        return [
          String(s.rules),
          `${fixed(s.listMs, 0)} ms`,
          `${fixed(s.setMs, 0)} ms`,
          `${fixed(s.topRefreshMs, 1)} ms`,
          fixed(s.cost.nsPerSkb, 0),
          one ? fixed(s.cost.nsPerSkb / one.nsPerSkb, 2) : '-',
        ];
      }),
    ),
  );
  return out.join('\n');
}
