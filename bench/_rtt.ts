import { spawnSync } from 'node:child_process';
import { createDelayLine, ifbDownload, clearPeers } from '../test/harness/delayline.js';
import { runCli, uniqueInstance } from '../test/harness/cli.js';
import { gated, inNetns, iperfClientArgs, iperfServer } from '../test/harness/traffic.js';

const rtt = Number(process.argv[2] ?? 40);
const mode = process.argv[3] ?? 'limiter';
const rateBits = Number(process.argv[4] ?? 10e6);
const bucketS = Number(process.argv[5] ?? 0.1);
const cc = process.argv[6] ?? 'cubic';
const flows = Number(process.argv[7] ?? 1);
const line = await createDelayLine('x' + (process.pid % 1000), rtt);
const env = { LIMITER_INSTANCE: uniqueInstance('rtt') };
const snmp = (ns: string) => {
  const t = spawnSync('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.startsWith('Tcp:'));
  const h = t[0].split(/\s+/),
    v = t[1].split(/\s+/);
  return { out: Number(v[h.indexOf('OutSegs')]), re: Number(v[h.indexOf('RetransSegs')]) };
};
try {
  const rate = rateBits / 8,
    bucket = Math.round(rate * bucketS);
  const server = await iperfServer('ipv4', { netns: line.server, address: line.serverAddress });
  const args = iperfClientArgs(server.port, {
    family: 'ipv4',
    address: line.serverAddress,
    seconds: 8,
    congestion: cc as 'cubic',
    download: true,
    parallel: flows > 1 ? flows : undefined,
  });
  const [c, ...a] = inNetns(line.client, ['iperf3', ...args]);
  const client = gated(c, a);
  if (mode === 'limiter') {
    const r = runCli(
      ['set', '--pid', String(client.pid), '--ingress-rate', String(rate), '--ingress-bucket', String(bucket)],
      env,
    );
    if (r.code) throw new Error(r.stderr);
  } else if (mode === 'ifb') ifbDownload(line, rate, bucket);
  const before = snmp(line.server);
  const ping = spawnSync('true');
  client.go();
  const pinger = gated('ip', ['netns', 'exec', line.client, 'ping', '-i', '0.2', '-c', '30', line.serverAddress]);
  setTimeout(() => pinger.go(), 1500);
  const out = await client.done;
  const p = await pinger.done;
  const after = snmp(line.server);
  const j = JSON.parse(out.stdout);
  const iv = j.intervals.map((i: any) => i.sum).filter((s: any) => s.start >= 2);
  const steady =
    iv.reduce((n: number, s: any) => n + s.bytes, 0) / iv.reduce((n: number, s: any) => n + s.end - s.start, 0) / rate;
  const rtts = [...p.stdout.matchAll(/time=([\d.]+)/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
  console.log(
    `${mode} rtt=${rtt} ${rateBits / 1e6}Mbit bucket=${bucketS}s ${cc}x${flows}: steady=${steady.toFixed(3)} retrans=${(((after.re - before.re) / (after.out - before.out)) * 100).toFixed(2)}% ping median=${rtts[Math.floor(rtts.length / 2)]}ms`,
    ping.status,
  );
  server.kill();
} finally {
  runCli(['purge'], env);
  clearPeers(line);
  line.destroy();
}
