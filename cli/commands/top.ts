import { usageError } from '../../lib/errors.js';
import { preflight } from '../../lib/context.js';
import { signalExitCode } from '../../lib/signals.js';
import { ratesBetween, sampleRules, type Sample } from '../../lib/ops/top.js';
import type { GlobalOptions } from '../context.js';
import { frameJson, renderFrame } from '../top-view.js';

interface TopOptions {
  interval: string;
  once?: boolean;
  json?: boolean;
}

const ENTER = '\x1b[?1049h\x1b[?25l'; // alternate screen, cursor hidden
const LEAVE = '\x1b[?25h\x1b[?1049l';
const HOME = '\x1b[H\x1b[2J';

function parseInterval(text: string): number {
  const seconds = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || seconds < 0.1 || seconds > 3600) {
    throw usageError('bad-interval', `invalid interval '${text}': expected seconds from 0.1 to 3600`);
  }
  return seconds * 1000;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function run(options: TopOptions, { style }: GlobalOptions): Promise<void> {
  const intervalMs = parseInterval(options.interval);
  const ctx = preflight();
  const interactive = !options.once && !options.json && process.stdout.isTTY === true;
  const title = () =>
    `limiter top: instance ${ctx.instance.name}, every ${intervalMs / 1000} s${interactive ? ', q quits' : ''}`;
  let previous: Sample | null = sampleRules(ctx);

  if (options.once) {
    await sleep(intervalMs);
    process.stdout.write(renderFrame(ratesBetween(previous, sampleRules(ctx)), style, title()));
    return;
  }

  await new Promise<void>((resolve) => {
    const finish = (code = 0) => {
      clearInterval(timer);
      if (interactive) {
        process.stdout.write(LEAVE);
        if (process.stdin.isTTY) process.stdin.setRawMode(false);
        process.stdin.pause();
      }
      process.exitCode = code;
      resolve();
    };
    const tick = () => {
      const current = sampleRules(ctx);
      const rates = ratesBetween(previous, current);
      previous = current;
      if (options.json) process.stdout.write(JSON.stringify(frameJson(rates, new Date())) + '\n');
      else process.stdout.write((interactive ? HOME : '\n') + renderFrame(rates, style, title()));
    };
    const timer = setInterval(tick, intervalMs);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
      process.once(signal, () => finish(signalExitCode(signal)));
    if (interactive) {
      process.stdout.write(ENTER + HOME + renderFrame(ratesBetween(null, previous!), style, title()));
      if (process.stdin.isTTY) process.stdin.setRawMode(true);
      process.stdin.on('data', (key: Buffer) => {
        // q, Q, Ctrl-C (raw mode delivers it as a byte) or Ctrl-D
        if ([0x71, 0x51, 0x03, 0x04].includes(key[0])) finish();
      });
    }
  });
}
