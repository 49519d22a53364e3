/** limiter top: one frame, JSON lines, and the live view in a real terminal (tmux). */
import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI, runCli, sleep } from '../harness/cli.js';
import { testScope } from '../harness/scope.js';
import { gated, iperfClientArgs, iperfServer } from '../harness/traffic.js';

const RATE = 1048576;
const scope = testScope();

/** A TCP upload limited to 1 MiB/s, running for `seconds`. */
async function limitedTransfer(env: NodeJS.ProcessEnv, seconds: number) {
  const server = await iperfServer('ipv4');
  const client = gated('iperf3', iperfClientArgs(server.port, { family: 'ipv4', seconds }));
  scope.defer(() => (client.kill(), server.kill()));
  expect(runCli(['set', '--pid', String(client.pid), '--rate', '1m', '--name', 'transfer'], env).code).toBe(0);
  client.go();
  return client;
}

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

describe('top', () => {
  it('--once shows the rate of a limited transfer within 10 % of the limit', async () => {
    const { env } = scope.instance('toponce');
    await limitedTransfer(env, 8);
    await sleep(2500);
    const result = runCli(['top', '--once'], env);
    expect(result.code, result.stderr).toBe(0);
    const row = /^transfer +\d+ +up +1 MiB\/s +([\d.]+) (B|KiB|MiB|GiB)\/s +\[[#.]+\]/m.exec(result.stdout);
    expect(row, result.stdout).not.toBeNull();
    const rate = Number(row![1]) * UNITS[row![2]];
    expect(rate).toBeGreaterThanOrEqual(0.9 * RATE);
    expect(rate).toBeLessThanOrEqual(1.1 * RATE);
    expect(result.stdout).not.toContain('\x1b[');
  });

  it('--json prints one JSON object per interval', async () => {
    const { env } = scope.instance('topjson');
    await limitedTransfer(env, 6);
    const top = spawn(CLI, ['top', '--json', '--interval', '0.5'], { env: { ...process.env, ...env } });
    scope.defer(() => top.kill('SIGKILL'));
    let out = '';
    top.stdout.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 100 && out.split('\n').length < 4; i++) await sleep(100);
    top.kill('SIGTERM');
    const lines = out.trim().split('\n').slice(0, 3);
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      const frame = JSON.parse(line) as {
        time: string;
        rules: Array<{ name: string; egress: { limitBytesPerSec: number } }>;
      };
      expect(frame.rules[0]).toMatchObject({ name: 'transfer', egress: { limitBytesPerSec: RATE } });
    }
  });

  it('in a terminal: draws the rules, and q leaves the terminal as it was', async () => {
    const { env, instance } = scope.instance('toptty');
    await limitedTransfer(env, 20);
    const socket = `lt_top_${process.pid}`;
    const tmux = (...args: string[]) => spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
    scope.defer(() => tmux('kill-server'));
    const command = `echo BEFORE-TOP; LIMITER_INSTANCE=${instance} ${CLI} top --interval 0.3; echo "AFTER-TOP $?"; sleep 60`;
    expect(tmux('new-session', '-d', '-s', 'top', '-x', '120', '-y', '30', command).status).toBe(0);
    const screen = () => tmux('capture-pane', '-p', '-t', 'top').stdout;
    let shown = '';
    for (let i = 0; i < 100 && !/transfer .* up .*\[/.test(shown); i++) {
      await sleep(100);
      shown = screen();
    }
    expect(shown).toMatch(/limiter top: instance .*, q quits/);
    expect(shown).toMatch(/^transfer +\d+ +up +1 MiB\/s/m);
    expect(shown).not.toContain('BEFORE-TOP'); // drawn on the alternate screen

    tmux('send-keys', '-t', 'top', 'q');
    let after = '';
    for (let i = 0; i < 50 && !after.includes('AFTER-TOP'); i++) {
      await sleep(100);
      after = screen();
    }
    expect(after).toContain('BEFORE-TOP');
    expect(after).toContain('AFTER-TOP 0');
    expect(after).not.toContain('limiter top:');
  });
});
