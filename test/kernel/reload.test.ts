/**
 * reload swaps the program atomically and keeps the maps: a transfer running
 * through it stays limited and does not stall, and counters carry on. A bad
 * object is refused before anything changes.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bpfObjectPath, packageRoot } from '../../lib/instance.js';
import { listJson, runCli, sleep } from '../harness/cli.js';
import { standInCgroup } from '../harness/http.js';
import { testScope } from '../harness/scope.js';
import {
  gated,
  iperfClientArgs,
  iperfServer,
  sampleCounters,
  steadyRate,
  worstExcess,
  DEBT_BYTES,
} from '../harness/traffic.js';

const RATE = 1048576;
const scope = testScope();

describe('reload', () => {
  it('keeps a running transfer limited, without a stall, with continuous counters', async () => {
    const { env, instance } = scope.instance('reload');
    const server = await iperfServer('ipv4');
    const client = gated('iperf3', iperfClientArgs(server.port, { family: 'ipv4', congestion: 'cubic', seconds: 7 }));
    scope.defer(() => (client.kill(), server.kill()));
    expect(runCli(['set', '--pid', String(client.pid), '--rate', '1m'], env).code).toBe(0);
    const before = listJson(env, '--bpf').bpf!;
    const sampler = sampleCounters(instance, `pid-${client.pid}`);
    client.go();
    await sleep(3000);
    // A copy, so the object is really read again, from another path.
    const dir = mkdtempSync(join(tmpdir(), 'limiter-reload-'));
    scope.defer(() => rmSync(dir, { recursive: true }));
    copyFileSync(bpfObjectPath({}), join(dir, 'limiter.bpf.o'));
    const reload = runCli(['reload', '-o', join(dir, 'limiter.bpf.o')], env);
    expect(reload.stderr).toBe('');
    expect(reload.code).toBe(0);
    expect((await client.done).code).toBe(0);
    const samples = sampler.stop();

    const after = listJson(env, '--bpf');
    expect(after.bpf!.links.map((l) => l.id)).toEqual(before.links.map((l) => l.id));
    for (const [i, link] of after.bpf!.links.entries()) expect(link.programId).not.toBe(before.links[i].programId);
    expect(after.rules[0]).toMatchObject({ rateBytesPerSec: RATE, bucketBytes: RATE });
    for (let i = 1; i < samples.length; i++)
      expect(samples[i].passedBytes).toBeGreaterThanOrEqual(samples[i - 1].passedBytes);
    expect(worstExcess(samples, RATE, RATE, DEBT_BYTES)).toBeLessThanOrEqual(0);
    expect(steadyRate(await server.result, 2)).toBeGreaterThanOrEqual(0.9 * RATE);
  });

  it('refuses a bad object with the reason and keeps the old program attached', () => {
    const { env } = scope.instance('badreload');
    const sleeper = gated('sleep', ['60']);
    scope.defer(() => sleeper.kill());
    expect(runCli(['set', '--pid', String(sleeper.pid), '--rate', '1m'], env).code).toBe(0);
    const before = listJson(env, '--bpf').bpf!.links;
    const dir = mkdtempSync(join(tmpdir(), 'limiter-bad-'));
    scope.defer(() => rmSync(dir, { recursive: true }));
    writeFileSync(join(dir, 'junk.o'), 'not an ELF file\n');

    const cases: Array<[string, number, RegExp]> = [
      [join(packageRoot(), 'test/fixtures/foreign.bpf.o'), 1, /cannot be used: it lacks limiter_egress/],
      [join(dir, 'junk.o'), 1, /cannot be used: not a BPF object/],
      [join(dir, 'missing.o'), 5, /not found/],
    ];
    for (const [object, code, message] of cases) {
      const result = runCli(['reload', '-o', object], env);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(message);
      expect(result.code).toBe(code);
      expect(listJson(env, '--bpf').bpf!.links).toEqual(before);
    }
    const wrongPath = runCli(['reload', '--cgroup-path', '/sys/fs/cgroup'], env);
    expect(wrongPath.code).toBe(2);
    expect(listJson(env).rules).toHaveLength(1);
  });
});

describe('reload with a cgroup limited in place', () => {
  it('gives its links the new program and keeps the limit', () => {
    const { env } = scope.instance('reloadin');
    const standIn = standInCgroup('reload');
    scope.defer(() => standIn.remove());
    expect(runCli(['set', '--cgroup', standIn.dir, '--rate', '1m'], env).code).toBe(0);
    const before = listJson(env, '--bpf').bpf!.links;
    const reload = runCli(['reload'], env);
    expect(reload.code, reload.stderr).toBe(0);
    const after = listJson(env, '--bpf');
    expect(after.bpf!.links.map((l) => l.id)).toEqual(before.map((l) => l.id));
    expect(after.bpf!.links.map((l) => l.programId)).not.toEqual(before.map((l) => l.programId));
    expect(after.rules).toMatchObject([{ target: 'cgroup', targetPath: standIn.path, rateBytesPerSec: RATE }]);
  });
});
