import { Chalk, type ChalkInstance } from 'chalk';

/** Colour only on a terminal, and never with NO_COLOR (non-empty) or --no-color. */
export function makeChalk(colorOption: boolean, env: NodeJS.ProcessEnv = process.env, isTTY = process.stdout.isTTY): ChalkInstance {
  const disabled = !colorOption || Boolean(env.NO_COLOR) || !isTTY;
  return disabled ? new Chalk({ level: 0 }) : new Chalk();
}

/** Left-aligned text columns; widths from the widest cell (colour codes excluded). */
export function table(header: string[], rows: string[][], style: (s: string) => string = (s) => s): string {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;
  const widths = header.map((h, i) => Math.max(visible(h), ...rows.map((r) => visible(r[i] ?? ''))));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i]! - visible(cell))))
      .join('  ');
  return [style(line(header)), ...rows.map(line)].join('\n') + '\n';
}

export function writeJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
