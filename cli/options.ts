/**
 * Every command and option, once: commander is built from this table
 * (cli/index.ts), and so are the bash completion and the man page's
 * synopsis, commands and options (scripts/gen-docs.mjs, at build time).
 */
import type { GlobalOptions } from './context.js';

/** How the shell completes an option's value. */
export type Completion = 'pid' | 'directory' | 'object' | 'file' | 'unit' | 'none';

export interface OptionSpec {
  /** commander's flags: '-o, --object <file>', '--tree' */
  flags: string;
  /** one line, for --help, completion and the man page */
  description: string;
  required?: boolean;
  default?: string;
  complete?: Completion;
}

export interface CommandModule {
  run(options: never, globals: GlobalOptions): void | Promise<void>;
}

export interface CommandSpec {
  name: string;
  /** one line, for --help */
  summary: string;
  /** the man page's paragraph (roff) */
  manual: string;
  options: OptionSpec[];
  /** a variadic argument, given to the command as options[key] */
  argument?: { spec: string; description: string; key: string };
  /** more lines at the end of the command's --help */
  help?: string;
  /** option groups the synopsis shows as alternatives: (--a x | --b y | --c) */
  oneOf?: string[][];
  /** the command handles SIGINT and SIGTERM itself (it passes them on, or they end it) */
  ownsSignals?: boolean;
  load(): Promise<CommandModule>;
}

const pid = (description: string, required = true): OptionSpec => ({
  flags: '--pid <pid>',
  description,
  required,
  complete: 'pid',
});
/** What set, unset and list are about: a process, or a cgroup limited in place. */
const targets = (verb: string, pidEffect: string): OptionSpec[] => [
  pid(`${verb} a process (${pidEffect})`, false),
  { flags: '--cgroup <path>', description: `${verb} a cgroup in place, by path`, complete: 'directory' },
  { flags: '--unit <name>', description: `${verb} a systemd unit's cgroup in place (web.service)`, complete: 'unit' },
  {
    flags: '--container <name>',
    description: `${verb} a container's cgroup in place (docker or podman)`,
    complete: 'none',
  },
];
const TARGET_GROUP = ['--pid', '--cgroup', '--unit', '--container'];
const tree = (description: string): OptionSpec => ({ flags: '--tree', description });
const json: OptionSpec = { flags: '--json', description: 'print JSON' };
const limitOptions: OptionSpec[] = [
  { flags: '--rate <rate>', description: 'upload (egress) limit, e.g. 1m (1 MiB/s) or 10mbit', complete: 'none' },
  {
    flags: '--bucket <size>',
    description: 'upload burst size, e.g. 64k (default: one second of rate)',
    complete: 'none',
  },
  { flags: '--ingress-rate <rate>', description: 'download (ingress) limit', complete: 'none' },
  {
    flags: '--ingress-bucket <size>',
    description: 'download burst size (default: one second of rate)',
    complete: 'none',
  },
];

export const GLOBAL_OPTIONS: OptionSpec[] = [
  { flags: '-v, --verbose', description: "print debug messages on stderr, libbpf's included" },
  { flags: '--no-color', description: 'never colour the output' },
  { flags: '-V, --version', description: 'print the version' },
  { flags: '-h, --help', description: 'show help' },
];

export const COMMANDS: CommandSpec[] = [
  {
    name: 'set',
    summary: 'limit a process (moved into its own rule) or a cgroup in place (unit, container)',
    manual: String.raw`Limit a process and its threads (with \fB\-\-tree\fR, its descendants too): it
moves into a rule of its own, and the sockets it already has \(em listeners and what they
accept included \(em go with it. Or limit a cgroup where it is (\fB\-\-cgroup\fR, \fB\-\-unit\fR,
\fB\-\-container\fR): nothing moves, the programs are attached next to whatever else is
attached there, and every socket of the cgroup and its descendants is limited. Each rule
has its own buckets; processes set with the same \fB\-\-name\fR share them. On a target
that is already limited, \fBset\fR changes its rule and keeps the direction not given.`,
    options: [
      ...targets('limit', 'moved into a rule of its own'),
      ...limitOptions,
      {
        flags: '--name <rule>',
        description: 'rule name; processes set with the same name share one limit',
        complete: 'none',
      },
      tree('with --pid: also every descendant of the process'),
    ],
    oneOf: [TARGET_GROUP],
    help:
      'Give one of --pid, --cgroup, --unit, --container, and --rate, --ingress-rate or both;\n' +
      'a rule that exists keeps the direction not given. Connections a process already has,\n' +
      'and those its listeners accept, are limited too (kernels with tcx, 6.6+).',
    load: () => import('./commands/set.js'),
  },
  {
    name: 'move',
    summary: 'move a process into an existing rule',
    manual: String.raw`Move a process into an existing rule, named by its cgroup directory, its
cgroup id, or as the rule most recently set. Paths are resolved and must name a rule
of the instance.`,
    options: [
      pid('the process to move'),
      {
        flags: '--cgroup-path <path>',
        description: "the rule's cgroup directory, as 'list' shows it",
        complete: 'directory',
      },
      { flags: '--cgid <id>', description: "the rule's cgroup id", complete: 'none' },
      { flags: '--last', description: 'the rule most recently set' },
      tree('also every descendant of the process'),
    ],
    oneOf: [['--cgroup-path', '--cgid', '--last']],
    load: () => import('./commands/move.js'),
  },
  {
    name: 'unset',
    summary: 'remove a limit: move a process back where it came from, or detach from a cgroup',
    manual: String.raw`Move a process back to the cgroup it came from and release its sockets
(what its listeners accept from then on is not limited); remove the rule when no process
is left in it. For a cgroup limited in place, detach the programs and remove the rule: the
cgroup, its processes and anything else attached there stay as they were.`,
    options: [
      ...targets('unlimit', 'moved back where it came from'),
      tree('with --pid: also every limited descendant of the process'),
    ],
    oneOf: [TARGET_GROUP],
    load: () => import('./commands/unset.js'),
  },
  {
    name: 'list',
    summary: 'show the rules, their limits, processes and counters',
    manual: String.raw`Show the rules as the kernel has them: limits, processes, passed and
dropped bytes and packets, per direction.`,
    options: [
      pid('only the rule of this process', false),
      { flags: '--cgroup <path>', description: 'only the rule limiting this cgroup in place', complete: 'directory' },
      { flags: '--unit <name>', description: "only the rule limiting this unit's cgroup", complete: 'unit' },
      { flags: '--container <name>', description: "only the rule limiting this container's cgroup", complete: 'none' },
      { flags: '--bpf', description: 'also show the kernel objects: programs, links, maps' },
      json,
    ],
    load: () => import('./commands/list.js'),
  },
  {
    name: 'run',
    summary: 'run a command limited from its first instruction; remove the rule when it ends',
    manual: String.raw`Run a command inside a fresh rule from its first instruction, pass its input,
output and signals through, exit with its status (128 + the signal number when a signal
killed it), and remove the rule when it ends.`,
    options: [
      ...limitOptions,
      { flags: '--name <rule>', description: 'rule name (default: run-<pid>)', complete: 'none' },
    ],
    argument: { spec: '<command...>', description: 'the command and its arguments, after --', key: 'command' },
    ownsSignals: true,
    load: () => import('./commands/run.js'),
  },
  {
    name: 'reload',
    summary: 'replace the BPF program atomically, keeping limits, tokens and counters',
    manual: String.raw`Replace the BPF programs atomically and keep the maps: limits, tokens and
counters carry on. The object is checked before anything changes.`,
    options: [
      {
        flags: '-o, --object <file>',
        description: 'the compiled BPF object (default: the installed one)',
        complete: 'object',
      },
      {
        flags: '--cgroup-path <path>',
        description: "where the program is attached; only the instance's cgroup is accepted",
        complete: 'directory',
      },
    ],
    load: () => import('./commands/reload.js'),
  },
  {
    name: 'top',
    summary: 'a live view of every rule: rate per direction against its limit',
    manual: String.raw`A live view: per rule and direction, the limit, the rate measured from the
kernel's counters, a bar of rate against limit and the share of packets dropped.
\fBq\fR or Ctrl\-C leaves. Reading the counters writes nothing.`,
    options: [
      { flags: '--interval <seconds>', description: 'seconds between refreshes', default: '1', complete: 'none' },
      { flags: '--once', description: 'print one frame, measured over one interval, and exit' },
      { flags: '--json', description: 'print one JSON object per interval, one per line' },
    ],
    ownsSignals: true,
    load: () => import('./commands/top.js'),
  },
  {
    name: 'apply',
    summary: 'make the rules from the rules file so: create, change and remove them',
    manual: String.raw`Make the kernel match the rules file (see \fBRULES FILE\fR): create, change and
remove the rules that came from it, one line per change (\fB+\fR, \fB~\fR, \fB\-\fR), or say that
nothing changed. Rules made with \fBset\fR are never touched. A rule that is unchanged is not
written, so its tokens and counters carry on. A rule whose unit is not running is waiting,
not an error. For each service the file names, a drop\-in in \fI/etc/systemd/system/<unit>.d/\fR
applies its rule again whenever the unit starts (with a new cgroup).`,
    options: [
      {
        flags: '-f, --file <path>',
        description: 'the rules file (default: /etc/limiter/rules.toml)',
        complete: 'file',
      },
      { flags: '--dry-run', description: 'print what would change, and change nothing' },
      {
        flags: '--unit <name>',
        description: "only this unit's rules (what its drop-in runs when it starts)",
        complete: 'unit',
      },
    ],
    load: () => import('./commands/apply.js'),
  },
  {
    name: 'metrics',
    summary: 'print the rules as Prometheus metrics, or serve them at /metrics',
    manual: String.raw`Print, per rule and direction, the limit, the bucket, and the passed and dropped bytes
and packets in the Prometheus text format, labelled \fBrule\fR, \fBdirection\fR and \fBtarget\fR. With
\fB\-\-listen\fR, serve the same at \fI/metrics\fR until a signal ends it. Reading writes nothing.`,
    options: [
      {
        flags: '--listen [address]',
        description: 'serve at http://address/metrics (default 127.0.0.1:9417; give an address to open it wider)',
        complete: 'none',
      },
    ],
    ownsSignals: true,
    load: () => import('./commands/metrics.js'),
  },
  {
    name: 'doctor',
    summary: 'check that this machine can run limiter, and the state of the instance',
    manual: String.raw`Check the kernel, privileges, libbpf, cgroup v2, bpffs, BTF, the BPF object,
and compare the instance's state with the kernel. One line per check; a rule whose
processes have all exited is information, not a problem.`,
    options: [json],
    load: () => import('./commands/doctor.js'),
  },
  {
    name: 'purge',
    summary: 'remove every rule, the program, the pins and the runtime state of the instance',
    manual: String.raw`Remove everything the instance owns: processes go back where they came from;
rule cgroups, links, programs, maps and runtime files are removed. Running it again
does nothing and succeeds.`,
    options: [],
    load: () => import('./commands/purge.js'),
  },
];

/** '--pid <pid>' → { long: '--pid', short: undefined, value: '<pid>' } */
export function parseFlags(flags: string): { short?: string; long: string; value?: string } {
  const match = /^(?:(-\w), )?(--[\w-]+)(?: ([<[].*[>\]]))?$/.exec(flags);
  if (!match) throw new Error(`bad option flags in cli/options.ts: ${flags}`);
  return { short: match[1], long: match[2], value: match[3] };
}
