/**
 * Hard to break: concurrent commands, commands killed at random moments,
 * things that vanish underneath, privileges, signals. After each, the state
 * agrees with the kernel and purge leaves nothing behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAP_RULES, PROG_EGRESS } from '../../lib/kernel/abi.js';
import { findCgroup2Mount } from '../../lib/kernel/cgroup.js';
import { BPFFS_ROOT, packageRoot, RUN_ROOT } from '../../lib/instance.js';
import { CLI, cgroupOf, instanceFootprint, listJson, runCli, sleep } from '../harness/cli.js';
import { testScope } from '../harness/scope.js';
import { snapshot } from '../harness/snapshot.js';
import { collect, gated, type Gated } from '../harness/traffic.js';

const scope = testScope();
/** Trials of the crash test; LIMITER_CRASH_TRIALS=100 for the long run (see README). */
const CRASH_TRIALS = Number(process.env.LIMITER_CRASH_TRIALS ?? 6);

function sleepers(count: number): Gated[] {
  const list = Array.from({ length: count }, () => gated('sleep', ['600']));
  scope.defer(() => list.forEach((p) => p.kill()));
  return list;
}

/** Runs limiter commands at once from a shell, as a script would. */
function inParallel(env: NodeJS.ProcessEnv, commands: string[][]): number[] {
  const script =
    commands.map((args, i) => `${CLI} ${args.join(' ')} >/dev/null 2>&1; echo "${i} $?" &`).join('\n') + '\nwait';
  const result = spawnSync('bash', ['-c', script], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  const codes: number[] = [];
  for (const line of result.stdout.trim().split('\n')) {
    const [i, code] = line.split(' ').map(Number);
    codes[i] = code!;
  }
  return codes;
}

/**
 * The state file says what the kernel has: after any state-changing command,
 * doctor finds the instance's state matching, and list's rules are exactly
 * the rule cgroups, each with its kernel limit.
 */
function expectConsistent(env: NodeJS.ProcessEnv, instance: string): void {
  const doctor = JSON.parse(runCli(['doctor', '--json'], env).stdout) as {
    checks: Array<{ name: string; severity: string; detail: string }>;
  };
  const problems = doctor.checks.filter((c) => c.name.startsWith('instance') && c.severity !== 'ok');
  expect(problems).toEqual([]);
  const dirs = Object.keys(snapshot(instance).cgroups).filter((d) => d !== '.');
  const rules = listJson(env).rules;
  expect(rules.map((r) => r.name).sort()).toEqual(dirs.sort());
  for (const rule of rules) expect(rule.rateBytesPerSec).not.toBeNull();
}

/** Another process holds the instance lock for 3 s (flock(1), as a script could). */
async function holdLock(instance: string): Promise<void> {
  const holder = spawn('flock', [join(RUN_ROOT, instance), 'sleep', '3'], { stdio: 'ignore' });
  scope.defer(() => holder.kill());
  await sleep(300);
}

function expectPurged(env: NodeJS.ProcessEnv, instance: string): void {
  const purge = runCli(['purge'], env);
  expect(purge.code, purge.stderr).toBe(0);
  expect(instanceFootprint(instance)).toEqual([]);
}

describe('concurrency', () => {
  it('32 set and then 32 unset at once: no rule lost, no cgroup leaked, no torn state', () => {
    const { env, instance } = scope.instance('par');
    const procs = sleepers(32);
    const setCodes = inParallel(
      env,
      procs.map((p) => ['set', '--pid', String(p.pid), '--rate', '1m']),
    );
    expect(setCodes).toEqual(procs.map(() => 0));
    const rules = listJson(env).rules;
    expect(rules.map((r) => r.pids[0]).sort()).toEqual(procs.map((p) => p.pid).sort());
    expectConsistent(env, instance);

    const unsetCodes = inParallel(
      env,
      procs.map((p) => ['unset', '--pid', String(p.pid)]),
    );
    expect(unsetCodes).toEqual(procs.map(() => 0));
    expect(listJson(env).rules).toEqual([]);
    expectConsistent(env, instance);
    expectPurged(env, instance);
  });

  it('set racing purge and reload: every command succeeds or says why, and nothing leaks', () => {
    const { env, instance } = scope.instance('race');
    const procs = sleepers(12);
    runCli(['set', '--pid', String(procs[0].pid), '--rate', '1m'], env);
    const commands = procs.slice(1).map((p) => ['set', '--pid', String(p.pid), '--rate', '1m']);
    commands.splice(4, 0, ['purge'], ['reload']);
    commands.splice(9, 0, ['reload'], ['purge']);
    const codes = inParallel(env, commands);
    // reload finds nothing attached right after a purge (1); everything else succeeds.
    codes.forEach((code, i) => expect([0, commands[i][0] === 'reload' ? 1 : 0]).toContain(code));
    if (listJson(env).rules.length > 0) expectConsistent(env, instance);
    expectPurged(env, instance);
    for (const p of procs) expect(cgroupOf(p.pid).startsWith(`/${instance}/`)).toBe(false);
  });

  it('a command that cannot get the lock in time exits 6 and changes nothing', async () => {
    const { env, instance } = scope.instance('busy');
    const [a, b] = sleepers(2);
    expect(runCli(['set', '--pid', String(a.pid), '--rate', '1m'], env).code).toBe(0);
    await holdLock(instance);
    const before = snapshot(instance);
    const result = runCli(['set', '--pid', String(b.pid), '--rate', '1m'], { ...env, LIMITER_LOCK_TIMEOUT: '0.5' });
    expect(result.code).toBe(6);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/another limiter command holds the lock/);
    expect(snapshot(instance)).toEqual(before);
  });
});

describe('crashes', () => {
  it(`SIGKILL at random moments of set, unset, reload and purge (${CRASH_TRIALS} trials)`, async () => {
    const { env, instance } = scope.instance('crash');
    const procs = sleepers(3);
    for (let trial = 0; trial < CRASH_TRIALS; trial++) {
      for (const p of procs.slice(0, 2))
        expect(runCli(['set', '--pid', String(p.pid), '--rate', '1m'], env).code).toBe(0);
      const victim = [
        ['set', '--pid', String(procs[2].pid), '--rate', '2m'],
        ['unset', '--pid', String(procs[0].pid)],
        ['reload'],
        ['purge'],
      ][trial % 4];
      const child = spawn(CLI, victim, { env: { ...process.env, ...env }, stdio: 'ignore' });
      const exited = collect(child, 30_000);
      await sleep(Math.random() * 400);
      child.kill('SIGKILL');
      await exited;
      // The next state-changing command notices what the crash left and repairs it.
      const repair = runCli(['set', '--pid', String(procs[1].pid), '--rate', '1m'], env);
      expect(repair.code, repair.stderr).toBe(0);
      expectConsistent(env, instance);
      expectPurged(env, instance);
      for (const p of procs) expect(cgroupOf(p.pid).startsWith(`/${instance}/`)).toBe(false);
    }
  }, 600_000);
});

describe('things that vanish underneath', () => {
  /** Two rules (a, b), with the processes the test started. */
  function twoRules(tag: string) {
    const { env, instance } = scope.instance(tag);
    const [a, b, c] = sleepers(3);
    for (const [p, name] of [
      [a, 'a'],
      [b, 'b'],
    ] as const) {
      expect(runCli(['set', '--pid', String(p.pid), '--rate', '1m', '--name', name], env).code).toBe(0);
    }
    /** A command that changes state: the moment repairs happen. */
    const next = () => runCli(['set', '--pid', String(c.pid), '--rate', '1m', '--name', 'c'], env);
    return { env, instance, a: a, b: b, next };
  }

  it('a limited process exits: doctor reports it as information, the next command removes its rule', () => {
    const { env, instance, a, next } = twoRules('exit');
    a.kill();
    spawnSync('sleep', ['0.2']);
    const doctor = runCli(['doctor'], env);
    expect(doctor.code, doctor.stdout).toBe(0);
    expect(doctor.stdout).toMatch(
      /^info +instance .*: state: .*has exited.*rule a: its processes have all exited \(ended; removed by the next change\)/m,
    );
    const result = next();
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/rule a: its processes have all exited; removed it/);
    expect(listJson(env).rules.map((r) => r.name)).toEqual(['b', 'c']);
    expectConsistent(env, instance);
  });

  it('a rule cgroup removed by hand: the rule is forgotten', () => {
    const { env, instance, a, next } = twoRules('rmdir');
    writeFileSync(join(findCgroup2Mount(), 'cgroup.procs'), `${a.pid}\n`);
    rmdirSync(join(findCgroup2Mount(), instance, 'a'));
    const result = next();
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/rule a had lost its cgroup; forgot it/);
    expectConsistent(env, instance);
  });

  it('a pinned map removed: pinned again from the attached program, every rule still limited', () => {
    const { env, instance, next } = twoRules('nomap');
    unlinkSync(join(BPFFS_ROOT, instance, MAP_RULES));
    expect(listJson(env).rules.every((r) => r.rateBytesPerSec === null)).toBe(true);
    const result = next();
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/pinned maps limiter_rules of instance .* had been removed; pinned them again/);
    expect(listJson(env).rules.map((r) => [r.name, r.rateBytesPerSec])).toEqual([
      ['a', 1048576],
      ['b', 1048576],
      ['c', 1048576],
    ]);
    expectConsistent(env, instance);
  });

  it("a rule's pinned link removed (its program detached): attached again", () => {
    const { env, instance, next } = twoRules('nolink');
    const a = listJson(env).rules.find((r) => r.name === 'a')!;
    unlinkSync(join(BPFFS_ROOT, instance, `rule_${a.cgroupId}_egress`));
    expect(runCli(['list'], env).stderr).toMatch(/limits may not be enforced/);
    const result = next();
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/rule a had lost its egress link; attached it again/);
    const bpf = listJson(env, '--bpf').bpf!;
    expect(
      bpf.links
        .filter((l) => l.target === a.cgroupId)
        .map((l) => l.hook)
        .sort(),
    ).toEqual(['egress', 'sock_ops']);
    expectConsistent(env, instance);
  });

  it('a pinned program removed: loaded again, the links keep working', () => {
    const { env, instance, next } = twoRules('noprog');
    unlinkSync(join(BPFFS_ROOT, instance, PROG_EGRESS));
    const result = next();
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/had lost a pinned program; loaded it again/);
    expect(listJson(env, '--bpf').bpf!.programs.map((p) => p.name)).toContain(PROG_EGRESS);
    expectConsistent(env, instance);
  });

  it('the runtime directory lost: rules recovered from the kernel', () => {
    const { env, instance, next } = twoRules('norun');
    rmSync(join(RUN_ROOT, instance), { recursive: true });
    const result = next();
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/rule a was missing from the state file; recovered it from the kernel/);
    expect(listJson(env).rules.map((r) => r.name)).toEqual(['a', 'b', 'c']);
    expectConsistent(env, instance);
  });

  it('a reboot (cgroups and pins gone, the state file left): stale rules forgotten', () => {
    const { env, instance, a, b, next } = twoRules('reboot');
    const root = findCgroup2Mount();
    for (const p of [a, b]) writeFileSync(join(root, 'cgroup.procs'), `${p.pid}\n`);
    for (const rule of ['a', 'b']) rmdirSync(join(root, instance, rule));
    rmSync(join(BPFFS_ROOT, instance), { recursive: true });
    rmdirSync(join(root, instance));
    const result = next();
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/rule a had lost its cgroup; forgot it/);
    expect(listJson(env).rules.map((r) => r.name)).toEqual(['c']);
    expectConsistent(env, instance);
  });
});

describe('privileges and files', () => {
  it('runtime files are root-owned and not world-writable; an unsafe runtime directory is refused', () => {
    const { env, instance } = scope.instance('modes');
    const [a, b] = sleepers(2);
    expect(runCli(['set', '--pid', String(a.pid), '--rate', '1m'], env).code).toBe(0);
    const runDir = join(RUN_ROOT, instance);
    for (const path of [runDir, join(runDir, 'state.json'), join(BPFFS_ROOT, instance)]) {
      const stat = statSync(path);
      expect(stat.uid).toBe(0);
      expect(stat.mode & 0o022).toBe(0);
    }
    chmodSync(runDir, 0o777);
    const before = snapshot(instance);
    const result = runCli(['set', '--pid', String(b.pid), '--rate', '1m'], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/is not a directory of its own that only root can write/);
    chmodSync(runDir, 0o755);
    expect(snapshot(instance)).toEqual(before);
  });

  it('an object that is not limiter’s is refused before anything is created', () => {
    const { env, instance } = scope.instance('foreign');
    const [a] = sleepers(1);
    const result = runCli(['set', '--pid', String(a.pid), '--rate', '1m'], {
      ...env,
      LIMITER_BPF_OBJECT: join(packageRoot(), 'test/fixtures/foreign.bpf.o'),
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot be used: it lacks limiter_egress/);
    expect(instanceFootprint(instance)).toEqual([]);
  });
});

describe('signals', () => {
  it('Ctrl-C while waiting for the lock stops the command before it changes anything', async () => {
    const { env, instance } = scope.instance('sigwait');
    const [a, b] = sleepers(2);
    expect(runCli(['set', '--pid', String(a.pid), '--rate', '1m'], env).code).toBe(0);
    await holdLock(instance);
    const before = snapshot(instance);
    const child = spawn(CLI, ['set', '--pid', String(b.pid), '--rate', '1m'], { env: { ...process.env, ...env } });
    const done = collect(child, 30_000);
    await sleep(1000);
    child.kill('SIGINT');
    const exited = await done;
    expect(exited.code).toBe(130);
    expect(exited.stdout).toBe('');
    expect(exited.stderr).toMatch(/interrupted by SIGINT; nothing was changed/);
    expect(snapshot(instance)).toEqual(before);
  });

  it('Ctrl-C at any moment of set and unset leaves a consistent instance', async () => {
    const { env, instance } = scope.instance('sigany');
    const procs = sleepers(4);
    for (let trial = 0; trial < 4; trial++) {
      const args =
        trial % 2 === 0
          ? ['set', '--pid', String(procs[trial].pid), '--rate', '1m']
          : ['unset', '--pid', String(procs[trial - 1].pid)];
      const child = spawn(CLI, args, { env: { ...process.env, ...env } });
      const done = collect(child, 30_000);
      await sleep(Math.random() * 300);
      child.kill('SIGINT');
      const exited = await done;
      // Killed before it could watch for signals (still loading): it had changed nothing.
      if (exited.code === null) expect(exited.signal).toBe('SIGINT');
      else expect([0, 4, 130]).toContain(exited.code);
      if (listJson(env).rules.length > 0) expectConsistent(env, instance);
    }
  });
});
