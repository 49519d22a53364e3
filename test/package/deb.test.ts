/**
 * The Debian package, as a user gets it: built with dpkg-buildpackage,
 * checked with lintian, installed with dpkg -i, used for real (in an
 * instance of the test's own), purged, and nothing left behind.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdById, type BpfObjectKind } from '../../lib/kernel/bpf.js';
import { packageRoot } from '../../lib/instance.js';
import { instanceFootprint, uniqueInstance } from '../harness/cli.js';
import { standInCgroup } from '../harness/http.js';

const root = packageRoot();
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const arch = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
const deb = join(root, 'build', 'deb', `speed-limiter_${version}_${arch}.deb`);
const instance = uniqueInstance('deb');
const env = { ...process.env, LIMITER_INSTANCE: instance, NO_COLOR: '1' };

function run(command: string, args: string[], timeout = 60_000) {
  const result = spawnSync(command, args, { encoding: 'utf8', env, timeout, maxBuffer: 64 * 1024 * 1024 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const installed = () =>
  run('dpkg-query', ['-W', '-f=${Status}', 'speed-limiter']).stdout.includes('install ok installed');

beforeAll(() => {
  // Never replace somebody's installation: this tier needs a machine without the package.
  expect(installed(), 'speed-limiter is installed on this machine; the package test will not replace it').toBe(false);
}, 600_000);

afterAll(() => {
  if (installed()) run('dpkg', ['--purge', 'speed-limiter']);
  run(join(root, 'bin', 'limiter'), ['purge']);
});

describe('speed-limiter.deb', () => {
  it('builds with dpkg-buildpackage', () => {
    const result = run('make', ['-C', root, 'deb'], 900_000);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(existsSync(deb)).toBe(true);
  }, 900_000);

  it('has no lintian errors', () => {
    const result = run('lintian', ['--fail-on', 'error', deb], 300_000);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).not.toMatch(/^E: /m);
  }, 300_000);

  it('depends on nodejs and libbpf1 only, and ships the compiled object, the man page and completion', () => {
    expect(run('dpkg-deb', ['-f', deb, 'Depends']).stdout.trim()).toBe('libbpf1, nodejs (>= 18)');
    const files = run('dpkg-deb', ['-c', deb]).stdout;
    for (const path of [
      './usr/bin/limiter',
      './usr/lib/speed-limiter/dist/limiter.mjs',
      './usr/lib/speed-limiter/bpf/limiter.bpf.o',
      './usr/lib/speed-limiter/node_modules/koffi/package.json',
      `./usr/lib/speed-limiter/node_modules/@koromix/koffi-linux-${arch === 'amd64' ? 'x64' : arch}/`,
      './usr/share/man/man8/limiter.8.gz',
      './usr/share/bash-completion/completions/limiter',
      './usr/share/doc/speed-limiter/README.md',
      './usr/share/doc/speed-limiter/examples/rules.toml.example',
      './lib/systemd/system/limiter.service',
    ]) {
      expect(files).toContain(path);
    }
    expect(files).not.toMatch(/\.ts$|\.c$/m);
  });

  it('installs, works, and leaves nothing behind when purged', () => {
    const install = run('dpkg', ['-i', deb], 300_000);
    expect(install.code, install.stderr).toBe(0);
    const files = run('dpkg', ['-L', 'speed-limiter'])
      .stdout.trim()
      .split('\n')
      .filter((f) => f.startsWith('/usr/lib/speed-limiter/') || f === '/usr/bin/limiter');

    expect(run('/usr/bin/limiter', ['--version']).stdout.trim()).toBe(version);
    const doctor = run('/usr/bin/limiter', ['doctor']);
    expect(doctor.code, doctor.stdout).toBe(0);
    expect(doctor.stdout).toMatch(/BPF object: \/usr\/lib\/speed-limiter\/bpf\/limiter.bpf.o/);

    const sleeper = spawnSync('sh', ['-c', 'sleep 300 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const pid = sleeper.stdout.trim();
    try {
      expect(run('/usr/bin/limiter', ['set', '--pid', pid, '--rate', '1m']).code).toBe(0);
      const list = JSON.parse(run('/usr/bin/limiter', ['list', '--json', '--bpf']).stdout) as {
        rules: Array<{ pids: number[] }>;
        bpf: { links: Array<{ id: number }>; programs: Array<{ id: number }>; maps: Array<{ id: number }> };
      };
      expect(list.rules[0].pids).toEqual([Number(pid)]);
      expect(run('/usr/bin/limiter', ['unset', '--pid', pid]).code).toBe(0);
      expect(run('/usr/bin/limiter', ['set', '--pid', pid, '--rate', '2m']).code).toBe(0);

      // Purging the package (with a rule still set) detaches and removes everything.
      const purge = run('dpkg', ['--purge', 'speed-limiter'], 300_000);
      expect(purge.code, purge.stderr).toBe(0);
      expect(files.filter((f) => existsSync(f))).toEqual([]);
      expect(instanceFootprint(instance)).toEqual([]);
      const gone = (kind: BpfObjectKind, id: number) => {
        for (let i = 0; i < 200; i++) {
          const fd = fdById(kind, id);
          if (fd === null) return true;
          closeSync(fd);
          spawnSync('sleep', ['0.05']);
        }
        return false;
      };
      expect(list.bpf.links).toHaveLength(2);
      for (const l of list.bpf.links) expect(gone('link', l.id)).toBe(true);
      for (const p of list.bpf.programs) expect(gone('prog', p.id)).toBe(true);
      expect(spawnSync('grep', ['-q', `^0::/${instance}/`, `/proc/${pid}/cgroup`]).status).not.toBe(0);
    } finally {
      spawnSync('kill', [pid]);
    }
  }, 600_000);

  it('limiter.service passes systemd-analyze verify once installed', () => {
    expect(run('dpkg', ['-i', deb], 300_000).code).toBe(0);
    try {
      const verify = run('systemd-analyze', ['verify', '/lib/systemd/system/limiter.service']);
      expect(verify.code, verify.stderr).toBe(0);
    } finally {
      expect(run('dpkg', ['--purge', 'speed-limiter'], 300_000).code).toBe(0);
    }
  }, 600_000);

  it('ansible-playbook installs it, writes the rules file, applies it; a second run changes nothing', () => {
    const standIn = standInCgroup('ansible');
    const dir = mkdtempSync(join(tmpdir(), 'limiter-ansible-'));
    try {
      const rules = { ci: { cgroup: standIn.path, rate: '10mbit', 'ingress-rate': '20mbit' } };
      const playbook = () =>
        run(
          'ansible-playbook',
          [
            '-i',
            'localhost,',
            '-c',
            'local',
            join(root, 'contrib/ansible/site.yml'),
            '-e',
            JSON.stringify({
              limiter_deb: deb,
              limiter_rules: rules,
              limiter_rules_file: join(dir, 'rules.toml'),
              limiter_instance: instance,
            }),
          ],
          600_000,
        );
      const first = playbook();
      expect(first.code, first.stdout + first.stderr).toBe(0);
      expect(first.stdout).toMatch(/localhost +: ok=\d+ +changed=[1-9]/);
      expect(readFileSync(join(dir, 'rules.toml'), 'utf8')).toContain('[rule."ci"]');
      const list = JSON.parse(run('/usr/bin/limiter', ['list', '--json']).stdout) as {
        rules: Array<{ name: string; source: string; targetPath: string; rateBytesPerSec: number }>;
      };
      expect(list.rules).toMatchObject([
        { name: 'ci', source: 'file', targetPath: standIn.path, rateBytesPerSec: 1250000 },
      ]);

      const second = playbook();
      expect(second.code, second.stdout + second.stderr).toBe(0);
      expect(second.stdout).toMatch(/localhost +: ok=\d+ +changed=0 /);

      expect(run('dpkg', ['--purge', 'speed-limiter'], 300_000).code).toBe(0);
      expect(instanceFootprint(instance)).toEqual([]);
      expect(existsSync(standIn.dir)).toBe(true);
    } finally {
      if (installed()) run('dpkg', ['--purge', 'speed-limiter']);
      rmSync(dir, { recursive: true, force: true });
      standIn.remove();
    }
  }, 900_000);
});
