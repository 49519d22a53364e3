import { createTopology } from './topology.js';
import { runAccuracy, type AccuracyCase } from './accuracy.js';
const topo = createTopology('x' + (process.pid % 1000));
const env = { LIMITER_INSTANCE: 'acc' + process.pid };
const cases = JSON.parse(process.argv[2]) as AccuracyCase[];
try {
  for (const c of cases) {
    const r = await runAccuracy(topo, env, c);
    console.log(JSON.stringify({ l: r.limiter, t: r.traffic, f: r.flows, mbit: r.rateBits / 1e6, b: r.bucketSeconds, steady: +r.steady.toFixed(3), peak: +r.peakWindow.toFixed(3), re: r.retransmits, err: r.errors }));
  }
} finally { topo.destroy(); }
