#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExitCode, LimiterError } from '../lib/errors.js';
import { packageRoot } from '../lib/instance.js';
import { log, setLogLevel } from '../lib/log.js';
import { receivedSignal, signalExitCode, watchSignals } from '../lib/signals.js';
import type { GlobalOptions } from './context.js';
import { makeStyle } from './output.js';

type Options = Record<string, unknown>;
/** Each command declares the options it reads; commander has checked the names. */
type CommandModule = { run(options: never, globals: GlobalOptions): void | Promise<void> };

function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Command modules load on use, so that `limiter list` does not pay for the others. */
function action(load: () => Promise<CommandModule>) {
  return async (options: Options, command: Command) => {
    const globals = command.optsWithGlobals() as { verbose?: boolean; color: boolean };
    if (globals.verbose) setLogLevel('debug');
    // run passes signals on to its command and top ends on them; every other command finishes the step it is in.
    if (!['run', 'top'].includes(command.name())) watchSignals();
    await (await load()).run(options as never, { style: await makeStyle(globals.color) });
    const signal = receivedSignal();
    if (signal) {
      process.stderr.write(`limiter: ${signal} received; the command finished its change first\n`);
      process.exitCode = signalExitCode(signal);
    }
  };
}

export function buildProgram(): Command {
  const program = new Command('limiter')
    .description('Limit the network bandwidth of processes (cgroup v2 + eBPF).')
    .version(version(), '-V, --version', 'print the version')
    .option('-v, --verbose', "print debug messages on stderr, libbpf's included")
    .option('--no-color', 'never colour the output')
    .addHelpText(
      'after',
      `
Rates: bytes/s (1048576), k/m/g = ×1024 (512k, 1m), or bit rates kbit/mbit/gbit (SI).
Exit status: 0 done, 1 failed, 2 usage, 3 not permitted, 4 not found, 5 unsupported, 6 busy.
Environment: LIMITER_INSTANCE, LIMITER_BPF_OBJECT, LIMITER_LOCK_TIMEOUT, NO_COLOR.`,
    )
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      outputError: (message, write) => write(`limiter: ${message.replace(/^error: /, '')}`),
    });

  program
    .command('set')
    .description('limit a process: move it into its own rule (or change the rule it is in)')
    .requiredOption('--pid <pid>', 'the process to limit')
    .option('--rate <rate>', 'upload (egress) limit, e.g. 1m (1 MiB/s) or 10mbit')
    .option('--bucket <size>', 'upload burst size, e.g. 64k (default: one second of rate)')
    .option('--ingress-rate <rate>', 'download (ingress) limit')
    .option('--ingress-bucket <size>', 'download burst size (default: one second of rate)')
    .option('--name <rule>', 'rule name; processes set with the same name share one limit')
    .option('--tree', 'also every descendant of the process')
    .addHelpText(
      'after',
      '\nGive --rate, --ingress-rate or both; a rule that exists keeps the direction not given.\n' +
        'Connections the process already has are limited too (uploads; kernels with tcx, 6.6+).',
    )
    .action(action(() => import('./commands/set.js')));

  program
    .command('move')
    .description('move a process into an existing rule')
    .requiredOption('--pid <pid>', 'the process to move')
    .option('--cgroup-path <path>', "the rule's cgroup directory, as 'list' shows it")
    .option('--cgid <id>', "the rule's cgroup id")
    .option('--last', 'the rule most recently set')
    .option('--tree', 'also every descendant of the process')
    .action(action(() => import('./commands/move.js')));

  program
    .command('unset')
    .description('remove the limit of a process: move it back to where it came from')
    .requiredOption('--pid <pid>', 'the limited process')
    .option('--tree', 'also every limited descendant of the process')
    .action(action(() => import('./commands/unset.js')));

  program
    .command('list')
    .description('show the rules, their limits, processes and counters')
    .option('--pid <pid>', 'only the rule of this process')
    .option('--bpf', 'also show the kernel objects: program, link, maps')
    .option('--json', 'print JSON')
    .action(action(() => import('./commands/list.js')));

  program
    .command('reload')
    .description('replace the BPF program atomically, keeping limits, tokens and counters')
    .option('-o, --object <file>', 'the compiled BPF object (default: the installed one)')
    .option('--cgroup-path <path>', "where the program is attached; only the instance's cgroup is accepted")
    .action(action(() => import('./commands/reload.js')));

  program
    .command('run')
    .description('run a command limited from its first instruction; remove the rule when it ends')
    .option('--rate <rate>', 'upload (egress) limit, e.g. 1m or 10mbit')
    .option('--bucket <size>', 'upload burst size (default: one second of rate)')
    .option('--ingress-rate <rate>', 'download (ingress) limit')
    .option('--ingress-bucket <size>', 'download burst size (default: one second of rate)')
    .option('--name <rule>', 'rule name (default: run-<pid>)')
    .argument('<command...>', 'the command and its arguments, after --')
    .action(async (words: string[], options: Options, command: Command) =>
      action(() => import('./commands/run.js'))({ ...options, command: words }, command),
    );

  program
    .command('top')
    .description('a live view of every rule: rate per direction against its limit')
    .option('--interval <seconds>', 'seconds between refreshes', '1')
    .option('--once', 'print one frame, measured over one interval, and exit')
    .option('--json', 'print one JSON object per interval, one per line')
    .action(action(() => import('./commands/top.js')));

  program
    .command('doctor')
    .description('check that this machine can run limiter, and the state of the instance')
    .option('--json', 'print JSON')
    .action(action(() => import('./commands/doctor.js')));

  program
    .command('purge')
    .description('remove every rule, the program, the pins and the runtime state of the instance')
    .action(action(() => import('./commands/purge.js')));

  return program;
}

/** The one place that turns errors into messages and exit codes. */
function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.ok;
    // commander has already printed its message
    return ExitCode.usage;
  }
  if (err instanceof LimiterError) {
    process.stderr.write(`limiter: ${err.message}\n`);
    if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
    if (err.cause instanceof Error) log.debug(`cause: ${err.cause.stack ?? err.cause.message}`);
    return err.exitCode;
  }
  const error = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`limiter: internal error: ${error.message}\n`);
  log.debug(error.stack ?? '');
  return ExitCode.failed;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    process.exitCode = exitCodeFor(err);
  }
}

await main();
