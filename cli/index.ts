#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_STATUS, ExitCode, LimiterError } from '../lib/errors.js';
import { packageRoot } from '../lib/instance.js';
import { log, setLogLevel } from '../lib/log.js';
import { receivedSignal, signalExitCode, watchSignals } from '../lib/signals.js';
import { RATE_FORMS } from '../lib/units.js';
import { COMMANDS, GLOBAL_OPTIONS, type CommandSpec, type OptionSpec } from './options.js';
import { makeStyle } from './output.js';

type Options = Record<string, unknown>;

function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Command modules load on use, so that `limiter list` does not pay for the others. */
function action(spec: CommandSpec) {
  return async (options: Options, command: Command) => {
    const globals = command.optsWithGlobals<{ verbose?: boolean; color: boolean }>();
    if (globals.verbose) setLogLevel('debug');
    // run passes signals on to its command, top and metrics end on them; the others finish the step they are in.
    if (!spec.ownsSignals) watchSignals();
    await (await spec.load()).run(options as never, { style: await makeStyle(globals.color) });
    const signal = receivedSignal();
    if (signal) {
      process.stderr.write(`limiter: ${signal} received; the command finished its change first\n`);
      process.exitCode = signalExitCode(signal);
    }
  };
}

function option(spec: OptionSpec): Option {
  const result = new Option(spec.flags, spec.description);
  if (spec.required) result.makeOptionMandatory();
  if (spec.default !== undefined) result.default(spec.default);
  return result;
}

export function buildProgram(): Command {
  const exitTable = EXIT_STATUS.map((s) => `${s.code} ${s.word}`).join(', ');
  const program = new Command('limiter')
    .description('Limit the network bandwidth of processes (cgroup v2 + eBPF).')
    .version(version(), '-V, --version', 'print the version')
    .option('-v, --verbose', GLOBAL_OPTIONS.find((o) => o.flags === '-v, --verbose')!.description)
    .option('--no-color', GLOBAL_OPTIONS.find((o) => o.flags === '--no-color')!.description)
    .addHelpText(
      'after',
      `
Rates: ${RATE_FORMS}.
Exit status: ${exitTable}.
Environment: LIMITER_INSTANCE, LIMITER_BPF_OBJECT, LIMITER_LOCK_TIMEOUT, NO_COLOR.`,
    )
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      outputError: (message, write) => write(`limiter: ${message.replace(/^error: /, '')}`),
    });

  for (const spec of COMMANDS) {
    const command = program.command(spec.name).description(spec.summary);
    for (const o of spec.options) command.addOption(option(o));
    if (spec.help) command.addHelpText('after', `\n${spec.help}`);
    if (spec.argument) {
      const { key } = spec.argument;
      command
        .argument(spec.argument.spec, spec.argument.description)
        .action(async (words: string[], options: Options, self: Command) =>
          action(spec)({ ...options, [key]: words }, self),
        );
    } else {
      command.action(action(spec));
    }
  }
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
