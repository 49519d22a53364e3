import type { DirectionName } from '../lib/kernel/abi.js';

export type Paint = (text: string) => string;

/** How tables name the directions. */
export const DIRECTION_LABEL: Record<DirectionName, string> = { egress: 'up', ingress: 'down' };

/** The few styles the commands use. */
export interface Style {
  bold: Paint;
  red: Paint;
  yellow: Paint;
  green: Paint;
  alarm: Paint;
}

const plain: Paint = (text) => text;
const PLAIN: Style = { bold: plain, red: plain, yellow: plain, green: plain, alarm: plain };

/**
 * Colour only on a terminal, and never with NO_COLOR (non-empty) or
 * --no-color. chalk is loaded only when colour is on: scripts, which read
 * through pipes, do not pay for it.
 */
export async function makeStyle(
  colorOption: boolean,
  env: NodeJS.ProcessEnv = process.env,
  isTTY = process.stdout.isTTY === true,
): Promise<Style> {
  if (!colorOption || Boolean(env.NO_COLOR) || !isTTY) return PLAIN;
  const { Chalk, supportsColor } = await import('chalk');
  // Colour is on by the rules above; chalk only picks how many colours.
  const chalk = new Chalk({ level: supportsColor ? supportsColor.level : 1 });
  return { bold: chalk.bold, red: chalk.red, yellow: chalk.yellow, green: chalk.green, alarm: chalk.red.bold };
}

/** Left-aligned text columns; widths from the widest cell (colour codes excluded), no trailing blanks. */
export function table(header: string[], rows: string[][], style: Paint = plain): string {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;
  const widths = header.map((h, i) => Math.max(visible(h), ...rows.map((r) => visible(r[i] ?? ''))));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i] - visible(cell))))
      .join('  ')
      .trimEnd();
  return [style(line(header)), ...rows.map(line)].join('\n') + '\n';
}

export function writeJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
