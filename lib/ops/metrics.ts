/**
 * `limiter metrics`: the rules' limits and counters in the Prometheus text
 * exposition format, printed or served over HTTP at /metrics. Reading the
 * counters writes nothing to the maps.
 */
import { createServer, type Server } from 'node:http';
import type { Context } from '../context.js';
import { DIRECTIONS, type Counters } from '../kernel/abi.js';
import { listRules } from './list.js';

interface Family {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
}

const FAMILIES = {
  limit: {
    name: 'limiter_limit_bytes_per_second',
    type: 'gauge',
    help: "A rule's limit in one direction, bytes per second.",
  },
  bucket: { name: 'limiter_bucket_bytes', type: 'gauge', help: "A rule's bucket (burst) in one direction, bytes." },
  passedBytes: { name: 'limiter_passed_bytes_total', type: 'counter', help: 'Payload bytes the rule let through.' },
  passedPackets: { name: 'limiter_passed_packets_total', type: 'counter', help: 'Packets the rule let through.' },
  droppedBytes: { name: 'limiter_dropped_bytes_total', type: 'counter', help: 'Payload bytes the rule dropped.' },
  droppedPackets: { name: 'limiter_dropped_packets_total', type: 'counter', help: 'Packets the rule dropped.' },
} satisfies Record<string, Family>;

const COUNTERS: Array<[keyof typeof FAMILIES, keyof Counters]> = [
  ['passedBytes', 'passedBytes'],
  ['passedPackets', 'passedPackets'],
  ['droppedBytes', 'droppedBytes'],
  ['droppedPackets', 'droppedPackets'],
];

/** A label value as the exposition format quotes it. */
const quote = (value: string) => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

/** The exposition text of every rule, per rule and direction. */
export function metricsText(ctx: Context): string {
  const samples = new Map<keyof typeof FAMILIES, string[]>(
    Object.keys(FAMILIES).map((k) => [k as keyof typeof FAMILIES, []]),
  );
  for (const rule of listRules(ctx)) {
    for (const direction of DIRECTIONS) {
      const labels = `{rule=${quote(rule.name)},direction=${quote(direction)},target=${quote(rule.target.kind)}}`;
      const limit = rule.value?.limits[direction];
      if (limit?.rate) {
        samples.get('limit')!.push(`${FAMILIES.limit.name}${labels} ${limit.rate}`);
        samples.get('bucket')!.push(`${FAMILIES.bucket.name}${labels} ${limit.bucket}`);
      }
      const counters = rule.counters?.[direction];
      for (const [family, field] of COUNTERS) {
        samples.get(family)!.push(`${FAMILIES[family].name}${labels} ${counters ? counters[field].toString() : '0'}`);
      }
    }
  }
  return (Object.keys(FAMILIES) as Array<keyof typeof FAMILIES>)
    .map((key) => {
      const { name, type, help } = FAMILIES[key];
      return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples.get(key)!].join('\n');
    })
    .join('\n')
    .concat('\n');
}

/** Serves metricsText at http://host:port/metrics until stop() is called. */
export function serveMetrics(
  ctx: Context,
  host: string,
  port: number,
): Promise<{ server: Server; stop(): Promise<void> }> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('limiter serves /metrics only\n');
      return;
    }
    try {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(metricsText(ctx));
    } catch (err) {
      response.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({ server, stop: () => new Promise((done) => server.close(() => done())) });
    });
  });
}
