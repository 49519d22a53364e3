/** Leveled diagnostics on stderr; stdout is reserved for data. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

const rank: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

let threshold: LogLevel = 'warn';
let write: (line: string) => void = (line) => process.stderr.write(`${line}\n`);

export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

/** Redirects output, for tests. */
export function setLogWriter(writer: (line: string) => void): void {
  write = writer;
}

function emit(level: LogLevel, message: string): void {
  if (rank[level] > rank[threshold]) return;
  const prefix = level === 'error' ? 'limiter: ' : `limiter: ${level}: `;
  write(prefix + message);
}

export const log = {
  warn: (message: string) => emit('warn', message),
  info: (message: string) => emit('info', message),
  debug: (message: string) => emit('debug', message),
};
