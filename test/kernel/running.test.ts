/**
 * Limiting what is already running (design.md K14, K15, K20, K21): a server
 * that was listening before `set`, a download that was running before `set`,
 * and a service's cgroup limited where it is. Real clients (curl) and servers
 * (python's http.server), in a network namespace of the test's own; the
 * service is a stand-in cgroup the test creates.
 */
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/instance.js';
import { findCgroup2Mount } from '../../lib/kernel/cgroup.js';
import { AttachType, BpfObject, linkCreate, queryCgroupPrograms } from '../../lib/kernel/bpf.js';
import { cgroupOf, listJson, runCli, sleep } from '../harness/cli.js';
import { curl, curlToFile, enter, httpServer, servedFiles, standInCgroup } from '../harness/http.js';
import { testScope } from '../harness/scope.js';
import { snapshot } from '../harness/snapshot.js';
import { gated, INGRESS_DEBT_BYTES, netns, type Family } from '../harness/traffic.js';

const RATE = 1048576;
const MIB = 1048576;
/** How long a running download is measured once limited; the bucket holds 1 s of rate. */
const MEASURE_SECONDS = 4;
const scope = testScope();

/** A namespace and files to serve, removed after the test. */
function setting(tag: string, files: Record<string, number>) {
  const { env, instance } = scope.instance(tag);
  const ns = netns(tag);
  scope.defer(() => ns.remove());
  const www = servedFiles(files);
  scope.defer(() => www.remove());
  return { env, instance, ns: ns.name, www: www.dir };
}

/**
 * The least time a download of size bytes may take under a 1 MiB/s limit with
 * a 1 MiB bucket: the bucket, the one skb per CPU that may pass on debt, and
 * the rest at the rate.
 */
const leastSeconds = (size: number) => (size - RATE - 2 * 64 * 1024) / RATE;

describe('a server that was listening before set --pid', () => {
  for (const family of ['ipv4', 'ipv6'] as Family[]) {
    it(`${family}: connections it accepts are limited, and after unset they are not`, async () => {
      const { env, ns, www } = setting(`srv${family === 'ipv4' ? 4 : 6}`, { 'file.bin': 5 * MIB });
      const server = await httpServer(ns, family, www);
      scope.defer(() => server.kill());
      expect((await curl(ns, server.url('file.bin'))).speed).toBeGreaterThan(20 * RATE);

      const set = runCli(['set', '--pid', String(server.pid), '--rate', '1m'], env);
      expect(set.code, set.stderr).toBe(0);
      expect(set.stdout).toMatch(/its 1 listening socket\(s\): connections they accept are limited \(upload\)/);
      const limited = await curl(ns, server.url('file.bin'));
      expect(limited.bytes).toBe(5 * MIB);
      // Never faster than the limit allows; and not collapsed either.
      expect(limited.seconds).toBeGreaterThanOrEqual(leastSeconds(5 * MIB));
      expect(limited.speed).toBeGreaterThan(0.5 * RATE);
      const rule = listJson(env).rules[0];
      expect(rule.adopted).toEqual({ egress: 1, ingress: 0, listeners: 1 });
      expect(rule.passedBytes).toBeGreaterThanOrEqual(4 * MIB);

      const unset = runCli(['unset', '--pid', String(server.pid)], env);
      expect(unset.code, unset.stderr).toBe(0);
      expect((await curl(ns, server.url('file.bin'))).speed).toBeGreaterThan(20 * RATE);
    });
  }
});

describe('a download that was running before set --ingress-rate', () => {
  // On loopback no window can limit (K23): the sender meets the bucket, and
  // BBR (v1) may pace at its estimate of a policer's rate, the average of
  // lossy rounds (design.md K28): at least half the rate, and no more than
  // the bucket allows.
  const bucketBound = 1 + (RATE + INGRESS_DEBT_BYTES) / (RATE * MEASURE_SECONDS);
  const cases = [
    { congestion: 'cubic', least: 0.9, most: 1.1 },
    { congestion: 'bbr', least: 0.5, most: bucketBound },
  ] as const;
  for (const { congestion, least, most } of cases) {
    it(`${congestion}: falls to the limit within 2 s, and after that gets ${least.toFixed(2)}-${most.toFixed(2)} of it`, async () => {
      const { env, ns, www } = setting(`dl${congestion}`, { 'big.bin': 200 * MIB });
      const server = await httpServer(ns, 'ipv4', www, { congestion });
      scope.defer(() => server.kill());
      // curl's own --limit-rate stands in for a fast link: 20 MB/s, well above the limit.
      const download = curlToFile(ns, server.url('big.bin'), ['--limit-rate', '20M']);
      scope.defer(() => download.kill());
      download.go();
      await sleep(1500);
      expect(download.size()).toBeGreaterThan(10 * RATE);

      const set = runCli(['set', '--pid', String(download.pid), '--ingress-rate', '1m'], env);
      expect(set.code, set.stderr).toBe(0);
      expect(set.stdout).toMatch(/its 1 open socket\(s\) limited too \(download\)/);
      await sleep(2000);
      const from = { bytes: download.size(), at: process.hrtime.bigint() };
      await sleep(MEASURE_SECONDS * 1000);
      const rate = (download.size() - from.bytes) / (Number(process.hrtime.bigint() - from.at) / 1e9);
      expect(rate).toBeGreaterThanOrEqual(least * RATE);
      expect(rate).toBeLessThanOrEqual(most * RATE);
      expect(listJson(env).rules[0].adopted).toEqual({ egress: 0, ingress: 1, listeners: 0 });
    });
  }
});

/** A program of someone else's attached to the stand-in, held by the test: limiter must leave it be. */
function foreignProgram(dir: string) {
  const object = BpfObject.open(join(packageRoot(), 'test/fixtures/foreign.bpf.o'));
  object.load();
  const cgroupFd = openSync(dir, 'r');
  const link = linkCreate(
    object.programFd(object.findProgram('foreign_egress')!),
    cgroupFd,
    AttachType.cgroupInetEgress,
  );
  closeSync(cgroupFd);
  return {
    attached: () => {
      const fd = openSync(dir, 'r');
      try {
        return queryCgroupPrograms(fd, AttachType.cgroupInetEgress).length;
      } finally {
        closeSync(fd);
      }
    },
    remove: () => {
      closeSync(link);
      object.close();
    },
  };
}

describe('a cgroup limited in place', () => {
  for (const by of ['--cgroup', '--unit'] as const) {
    it(`${by}: the server in it is limited, nothing moves, and unset and purge leave the cgroup as it was`, async () => {
      const { env, ns, www } = setting(by === '--cgroup' ? 'cg' : 'unit', { 'file.bin': 5 * MIB });
      const standIn = standInCgroup('web');
      scope.defer(() => standIn.remove());
      const server = await httpServer(ns, 'ipv4', www, { before: (pid) => enter(standIn.dir, pid) });
      scope.defer(() => server.kill());
      const foreign = foreignProgram(standIn.dir);
      scope.defer(() => foreign.remove());
      expect(foreign.attached()).toBe(1);
      // A connection open before set: in place, it is limited too.
      const running = curlToFile(ns, server.url('file.bin'), ['--limit-rate', '200K']);
      scope.defer(() => running.kill());
      running.go();

      const target = by === '--cgroup' ? standIn.dir : standIn.unit;
      const set = runCli(['set', by, target, '--rate', '1m'], env);
      expect(set.code, set.stderr).toBe(0);
      const kind = by === '--cgroup' ? `cgroup ${standIn.path}` : `unit ${standIn.unit} \\(${standIn.path}\\)`;
      expect(set.stdout).toMatch(
        new RegExp(`${kind} limited in place \\(upload\\): 1 process\\(es\\) .*nothing moved`),
      );
      expect(cgroupOf(server.pid)).toBe(standIn.path);
      expect(foreign.attached()).toBe(2);

      const limited = await curl(ns, server.url('file.bin'));
      expect(limited.seconds).toBeGreaterThanOrEqual(leastSeconds(5 * MIB));
      expect(limited.speed).toBeGreaterThan(0.5 * RATE);
      expect(listJson(env, by, target).rules).toMatchObject([
        { target: by.slice(2), targetPath: standIn.path, pids: [server.pid], rateBytesPerSec: RATE },
      ]);

      const unset = runCli(['unset', by, target], env);
      expect(unset.code, unset.stderr).toBe(0);
      expect(foreign.attached()).toBe(1);
      expect(cgroupOf(server.pid)).toBe(standIn.path);
      expect((await curl(ns, server.url('file.bin'))).speed).toBeGreaterThan(20 * RATE);

      expect(runCli(['set', by, target, '--rate', '1m'], env).code).toBe(0);
      expect(runCli(['purge'], env).code).toBe(0);
      expect(existsSync(standIn.dir)).toBe(true);
      expect(cgroupOf(server.pid)).toBe(standIn.path);
      expect(foreign.attached()).toBe(1);
    });
  }

  it('a cgroup its manager removes: doctor reports it, the next change removes the rule', () => {
    const { env } = scope.instance('gone');
    const standIn = standInCgroup('gone');
    scope.defer(() => standIn.remove());
    const sleeper = gated('sleep', ['60']);
    scope.defer(() => sleeper.kill());
    expect(runCli(['set', '--unit', standIn.unit, '--rate', '1m'], env).code).toBe(0);
    standIn.remove();
    const doctor = runCli(['doctor'], env);
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toContain(`the cgroup of rule ${standIn.unit} is gone`);
    const next = runCli(['set', '--pid', String(sleeper.pid), '--rate', '1m'], env);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain(`the cgroup rule ${standIn.unit} limited was removed`);
    expect(listJson(env).rules.map((r) => r.target)).toEqual(['pid']);
  });

  it('--container: finds the cgroup through docker inspect (a stand-in docker here)', () => {
    const { env } = scope.instance('ctr');
    const standIn = standInCgroup('ctr');
    scope.defer(() => standIn.remove());
    const inside = gated('sleep', ['60']);
    scope.defer(() => inside.kill());
    enter(standIn.dir, inside.pid);
    const bin = mkdtempSync(join(tmpdir(), 'limiter-docker-'));
    scope.defer(() => rmSync(bin, { recursive: true, force: true }));
    const docker = join(bin, 'docker');
    writeFileSync(
      docker,
      `#!/bin/sh\n[ "$1 $2 $3 $4" = "inspect --format {{.State.Pid}} web" ] && { echo ${inside.pid}; exit 0; }\n` +
        'echo "Error: No such object: $4" >&2; exit 1\n',
    );
    chmodSync(docker, 0o755);
    const withDocker = { ...env, PATH: `${bin}:${process.env.PATH}` };

    const set = runCli(['set', '--container', 'web', '--rate', '1m'], withDocker);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain(`container web (${standIn.path}) limited in place`);
    expect(listJson(env).rules).toMatchObject([{ name: 'web', target: 'container', targetPath: standIn.path }]);
    const unknown = runCli(['set', '--container', 'other', '--rate', '1m'], withDocker);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toMatch(/docker knows no running container other/);
    expect(runCli(['unset', '--container', 'web'], withDocker).code).toBe(0);
    expect(listJson(env).rules).toEqual([]);
    expect(cgroupOf(inside.pid)).toBe(standIn.path);
  });

  it('refuses what it must not limit, and what does not exist, and changes nothing', () => {
    const { env, instance } = scope.instance('refuse');
    const standIn = standInCgroup('refuse');
    scope.defer(() => standIn.remove());
    const sleeper = gated('sleep', ['60']);
    scope.defer(() => sleeper.kill());
    expect(runCli(['set', '--pid', String(sleeper.pid), '--rate', '1m'], env).code).toBe(0);
    const own = listJson(env).rules[0].cgroupPath;
    const before = snapshot(instance);
    const cases: Array<[string[], number, RegExp]> = [
      [['--cgroup', '/tmp'], 2, /is not in the cgroup v2 tree/],
      [['--cgroup', findCgroup2Mount()], 2, /is the root cgroup/],
      [['--cgroup', own], 2, /belongs to limiter instance/],
      [['--cgroup', `${standIn.dir}/nope`], 4, /no cgroup at/],
      [['--unit', 'no-such-unit-anywhere.service'], 4, /has no cgroup under/],
      [['--unit', 'not a unit'], 2, /invalid unit name/],
      [['--cgroup', standIn.dir, '--pid', String(sleeper.pid)], 2, /exactly one of --pid, --cgroup/],
      [['--cgroup', standIn.dir, '--tree'], 2, /--tree goes with --pid/],
    ];
    for (const [args, code, message] of cases) {
      const result = runCli(['set', ...args, '--rate', '1m'], env);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.code, args.join(' ')).toBe(code);
      expect(snapshot(instance)).toEqual(before);
    }
    // move never puts a process into a rule that limits a cgroup in place.
    expect(runCli(['set', '--cgroup', standIn.dir, '--rate', '1m'], env).code).toBe(0);
    const move = runCli(['move', '--pid', String(sleeper.pid), '--last'], env);
    expect(move.code).toBe(2);
    expect(move.stderr).toMatch(/limits a cgroup in place; processes are not moved into it/);
  });
});
