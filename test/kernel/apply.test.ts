/**
 * Limits that last: the rules file, `limiter apply`, the drop-in that brings
 * a unit's limit back when the unit restarts (tested by making the stand-in
 * cgroup again and running what the unit would run), and the metrics.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, listJson, runCli, sleep } from '../harness/cli.js';
import { enter, standInCgroup } from '../harness/http.js';
import { testScope } from '../harness/scope.js';
import { snapshot } from '../harness/snapshot.js';
import { collect, freePort, gated } from '../harness/traffic.js';

const scope = testScope();

/** An instance, a directory for the rules file and for unit drop-ins, and a stand-in service. */
function setting(tag: string) {
  const { env, instance } = scope.instance(tag);
  const dir = mkdtempSync(join(tmpdir(), 'limiter-apply-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const standIn = standInCgroup(tag);
  scope.defer(() => standIn.remove());
  const file = join(dir, 'rules.toml');
  const systemd = join(dir, 'systemd');
  return {
    env: { ...env, LIMITER_SYSTEMD_DIR: systemd },
    instance,
    file,
    systemd,
    standIn,
    write: (text: string) => writeFileSync(file, text),
    apply: (...args: string[]) => runCli(['apply', '-f', file, ...args], { ...env, LIMITER_SYSTEMD_DIR: systemd }),
  };
}

describe('apply', () => {
  it('creates, changes and removes the rules of the file, one line each; a second run changes nothing', () => {
    const { env, write, apply, standIn } = setting('apply');
    const slice = standIn.path.split('/').slice(0, 2).join('/');
    write(
      `[rule.web]\nunit = "${standIn.unit}"\nrate = "10mbit"\ningress-rate = "50mbit"\n\n[rule.ci]\ncgroup = "${slice}"\nrate = "1m"\n`,
    );
    const first = apply();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(
      /^\+ web: unit web-.*\.service \(.*\): upload 1.19 MiB\/s \(10 Mbit\/s\) = 1250000 B\/s/m,
    );
    expect(first.stdout).toMatch(/^\+ ci: cgroup \/limiter-test-.*\.slice: upload 1 MiB\/s/m);
    const rules = listJson(env).rules;
    expect(rules.map((r) => [r.name, r.target, r.rateBytesPerSec, r.ingressRateBytesPerSec])).toEqual([
      ['ci', 'cgroup', 1048576, null],
      ['web', 'unit', 1250000, 6250000],
    ]);
    expect(rules.map((r) => r.source)).toEqual(['file', 'file']);

    const again = apply();
    expect(again.stdout).toMatch(/^no changes: 2 rule\(s\) as in .*rules\.toml\n$/);
    expect(listJson(env).rules.map((r) => r.slot)).toEqual(rules.map((r) => r.slot));

    write(`[rule.web]\nunit = "${standIn.unit}"\nrate = "20mbit"\n`);
    const changed = apply();
    expect(changed.code, changed.stderr).toBe(0);
    expect(
      changed.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.slice(0, 6)),
    ).toEqual(['~ web:', '- ci: ']);
    expect(listJson(env).rules).toMatchObject([
      { name: 'web', rateBytesPerSec: 2500000, ingressRateBytesPerSec: null },
    ]);
  });

  it('keeps tokens and counters of a rule it does not change', async () => {
    const { env, write, apply, standIn } = setting('keep');
    write(`[rule.web]\ncgroup = "${standIn.path}"\nrate = "1m"\n`);
    expect(apply().code).toBe(0);
    // Some traffic through the rule: UDP to the discard port on loopback, from a process in the stand-in.
    const sender = gated('python3', [
      '-c',
      'import socket\nfor _ in range(200): socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x" * 1000, ("127.0.0.1", 9))',
    ]);
    scope.defer(() => sender.kill());
    enter(standIn.dir, sender.pid);
    sender.go();
    await sender.done;
    const before = listJson(env).rules[0];
    expect(before.passedBytes).toBeGreaterThan(0);
    expect(apply().stdout).toMatch(/^no changes/);
    expect(listJson(env).rules[0]).toMatchObject({ slot: before.slot, passedBytes: before.passedBytes });
  });

  it('--dry-run prints the plan and changes nothing', () => {
    const { instance, write, apply, standIn, systemd } = setting('dry');
    write(`[rule.web]\nunit = "${standIn.unit}"\nrate = "1m"\n`);
    const before = snapshot(instance);
    const dry = apply('--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^\+ web: unit .*\ndry run: 1 rule\(s\) would change, nothing was done\n$/);
    expect(snapshot(instance)).toEqual(before);
    expect(existsSync(systemd)).toBe(false);
  });

  it('never touches a rule made with set', () => {
    const { env, instance, write, apply, standIn } = setting('hand');
    const sleeper = gated('sleep', ['60']);
    scope.defer(() => sleeper.kill());
    expect(runCli(['set', '--pid', String(sleeper.pid), '--rate', '1m', '--name', 'web'], env).code).toBe(0);
    write('');
    expect(apply().stdout).toMatch(/^no changes: 0 rule/);
    expect(listJson(env).rules.map((r) => r.name)).toEqual(['web']);
    write(`[rule.web]\nunit = "${standIn.unit}"\nrate = "2m"\n`);
    const before = snapshot(instance);
    const clash = apply();
    expect(clash.code).toBe(1);
    expect(clash.stdout).toBe('');
    expect(clash.stderr).toMatch(/rules.toml:1: rule web: rule web made with 'limiter set' limits under that name/);
    expect(snapshot(instance)).toEqual(before);
  });

  it('a bad file: exit 2, one line with file and line, stdout empty, nothing changed', () => {
    const { instance, write, apply, standIn } = setting('bad');
    write(`[rule.ok]\nunit = "${standIn.unit}"\nrate = "1m"\n`);
    expect(apply().code).toBe(0);
    const before = snapshot(instance);
    const cases: Array<[string, RegExp]> = [
      ['[rule.web\nunit = "a.service"\n', /:1: /],
      ['[rule.web]\nunit = "a.service"\nrate = "1m"\ncolour = "red"\n', /:4: rule web: unknown key 'colour'/],
      ['[rule.web]\nunit = "a.service"\nrate = "fast"\n', /:3: invalid rate 'fast'/],
      ['[rule.web]\nunit = "a.service"\ncgroup = "/x"\nrate = "1m"\n', /:3: rule web needs exactly one target/],
      ['[rule.web]\nrate = "1m"\n', /:1: rule web needs exactly one target/],
      ['[rule.web]\nunit = "a.service"\n', /:1: rule web needs rate, ingress-rate or both/],
      [
        '[rule.web]\nunit = "a.service"\nrate = "1m"\n\n[rule.web]\nunit = "b.service"\nrate = "1m"\n',
        /:5: .*already defined/,
      ],
      ['[rule.web]\nunit = "a.service"\nbucket = "1m"\ningress-rate = "1m"\n', /:3: rule web: bucket needs rate/],
      ['[rule."a b"]\nunit = "a.service"\nrate = "1m"\n', /:1: invalid rule name 'a b'/],
      ['[rule.web]\nunit = "a.service"\nrate = 5\n', /:3: rule web: rate must be a string/],
      ['[rule.web]\ncgroup = "/"\nrate = "1m"\n', /:1: rule web: \/ is the root cgroup/],
      ['mode = "strict"\n', /:1: unknown key 'mode'/],
    ];
    for (const [text, message] of cases) {
      write(text);
      const result = apply();
      expect(result.stdout, text).toBe('');
      expect(result.stderr, text).toMatch(new RegExp(`^limiter: .*rules\\.toml${message.source}`));
      expect(result.stderr.trimEnd().split('\n').length, text).toBeLessThanOrEqual(2);
      expect(result.code, text).toBe(2);
      expect(snapshot(instance)).toEqual(before);
    }
    const missing = runCli(['apply', '-f', '/nonexistent/rules.toml']);
    expect(missing.code).toBe(4);
  });
});

describe('limits that survive a restart', () => {
  it('a unit not running yet is waiting; its drop-in applies the rule when it starts, and again after a restart', () => {
    const { env, instance, write, apply, standIn, systemd, file } = setting('restart');
    const later = `${standIn.unit.replace('.service', '')}-later.service`;
    const laterDir = join(standIn.dir, '..', later);
    scope.defer(() => existsSync(laterDir) && rmdirSync(laterDir));
    write(`[rule.later]\nunit = "${later}"\nrate = "1m"\n`);
    const first = apply();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^\. later: waiting: unit .* is not running; its limit is applied when it starts\n/);
    expect(listJson(env).rules).toEqual([]);
    const dropIn = readFileSync(join(systemd, `${later}.d`, `limiter-${instance}.conf`), 'utf8');
    const command = /^ExecStartPost=-(.*)$/m.exec(dropIn)![1];
    expect(command).toContain(`apply -f ${file} --unit ${later}`);

    // What systemd does: a fresh cgroup for the unit, then ExecStartPost=.
    const start = () => {
      mkdirSync(laterDir);
      const result = spawnSync('sh', ['-c', command], {
        encoding: 'utf8',
        env: { ...process.env, LIMITER_SYSTEMD_DIR: systemd },
      });
      expect(result.status, result.stderr).toBe(0);
      return listJson(env).rules.find((r) => r.name === 'later');
    };
    const started = start();
    expect(started).toMatchObject({ target: 'unit', rateBytesPerSec: 1048576 });
    rmdirSync(laterDir); // the unit stops: normal life for a rule of the file
    const doctor = runCli(['doctor'], env);
    expect(doctor.code, doctor.stdout).toBe(0);
    expect(doctor.stdout).toContain('the cgroup of rule later is gone; it waits in the rules file');
    const restarted = start();
    expect(restarted).toMatchObject({ target: 'unit', rateBytesPerSec: 1048576 });
    expect(restarted!.cgroupId).not.toBe(started!.cgroupId);

    // systemd accepts the drop-in on a unit of the stand-in's name.
    const units = join(systemd, 'verify');
    mkdirSync(units, { recursive: true });
    writeFileSync(join(units, later), '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/sleep 60\n');
    mkdirSync(join(units, `${later}.d`));
    writeFileSync(join(units, `${later}.d`, 'limiter.conf'), dropIn);
    const verify = spawnSync('systemd-analyze', ['verify', join(units, later)], {
      encoding: 'utf8',
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${units}:` },
    });
    expect(verify.status, verify.stderr).toBe(0);

    // Out of the file: its drop-in goes too; purge removes every drop-in of the instance.
    write('');
    expect(apply().stdout).toMatch(/^- later: /m);
    expect(existsSync(join(systemd, `${later}.d`))).toBe(false);
    write(`[rule.later]\nunit = "${later}"\nrate = "1m"\n`);
    apply();
    expect(runCli(['purge'], { ...env, LIMITER_SYSTEMD_DIR: systemd }).code).toBe(0);
    expect(existsSync(join(systemd, `${later}.d`))).toBe(false);
  });
});

describe('metrics', () => {
  it('prints the Prometheus text format that promtool accepts, and serves the same at /metrics', async () => {
    const { env, instance, write, apply, standIn } = setting('metrics');
    write(`[rule.web]\nunit = "${standIn.unit}"\nrate = "1m"\ningress-rate = "2m"\n`);
    expect(apply().code).toBe(0);
    const before = snapshot(instance);
    const printed = runCli(['metrics'], env);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toContain(
      `limiter_limit_bytes_per_second{rule="web",direction="egress",target="unit"} 1048576`,
    );
    expect(printed.stdout).toContain(`limiter_dropped_packets_total{rule="web",direction="ingress",target="unit"} 0`);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: printed.stdout, encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(snapshot(instance)).toEqual(before);

    const port = await freePort();
    const server = spawn(CLI, ['metrics', '--listen', `127.0.0.1:${port}`], { env: { ...process.env, ...env } });
    const exited = collect(server, 60_000);
    scope.defer(() => server.kill('SIGKILL'));
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
    let served = { status: 0, body: '' };
    for (let i = 0; i < 100 && served.status !== 200; i++) {
      served = await get('/metrics').catch(() => ({ status: 0, body: '' }));
      if (served.status !== 200) await sleep(100);
    }
    expect(served.status).toBe(200);
    expect(served.body).toBe(runCli(['metrics'], env).stdout);
    expect((await get('/')).status).toBe(404);
    server.kill('SIGTERM');
    expect((await exited).code).toBe(0);
    expect(snapshot(instance)).toEqual(before);
  });
});
