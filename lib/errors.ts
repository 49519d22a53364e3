/** Exit status of every command (doc/design.md, "Exit status"). */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  notPermitted: 3,
  notFound: 4,
  unsupported: 5,
  busy: 6,
} as const;
/** One of the table above, or 128 + a signal number (interrupted). */
export type ExitCodeValue = number;

/** What each exit status means, in a word and in a sentence: --help and the man page show it. */
export const EXIT_STATUS: ReadonlyArray<{ code: number; word: string; meaning: string }> = [
  { code: ExitCode.ok, word: 'done', meaning: 'Done.' },
  {
    code: ExitCode.failed,
    word: 'failed',
    meaning: 'The operation failed (kernel, libbpf or filesystem error); the reason is on standard error.',
  },
  {
    code: ExitCode.usage,
    word: 'usage',
    meaning: 'Usage: unknown command or option, bad number or unit, missing argument.',
  },
  {
    code: ExitCode.notPermitted,
    word: 'not permitted',
    meaning: 'Not permitted: not root, or CAP_BPF, CAP_SYS_ADMIN or CAP_NET_ADMIN missing.',
  },
  { code: ExitCode.notFound, word: 'not found', meaning: 'Not found: no such process, rule, cgroup or cgroup id.' },
  {
    code: ExitCode.unsupported,
    word: 'unsupported',
    meaning: 'Unsupported environment: no cgroup v2, no BPF support, BPF object missing.',
  },
  { code: ExitCode.busy, word: 'busy', meaning: 'Busy: another limiter command held the lock past the wait limit.' },
];

export interface ErrorDetails {
  hint?: string;
  cause?: unknown;
}

/** Every failure the library reports. `code` is stable and machine-readable. */
export class LimiterError extends Error {
  readonly code: string;
  readonly exitCode: ExitCodeValue;
  readonly hint: string | undefined;

  constructor(exitCode: ExitCodeValue, code: string, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'LimiterError';
    this.exitCode = exitCode;
    this.code = code;
    this.hint = details.hint;
  }
}

export const usageError = (code: string, message: string, details?: ErrorDetails) =>
  new LimiterError(ExitCode.usage, code, message, details);
export const operationFailed = (code: string, message: string, details?: ErrorDetails) =>
  new LimiterError(ExitCode.failed, code, message, details);
export const notPermitted = (code: string, message: string, details?: ErrorDetails) =>
  new LimiterError(ExitCode.notPermitted, code, message, details);
export const notFound = (code: string, message: string, details?: ErrorDetails) =>
  new LimiterError(ExitCode.notFound, code, message, details);
export const unsupported = (code: string, message: string, details?: ErrorDetails) =>
  new LimiterError(ExitCode.unsupported, code, message, details);
export const busy = (code: string, message: string, details?: ErrorDetails) =>
  new LimiterError(ExitCode.busy, code, message, details);

/** errno of a Node system error, or undefined. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}
