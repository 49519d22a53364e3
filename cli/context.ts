import type { ChalkInstance } from 'chalk';

/** What every command gets from the top level. */
export interface GlobalOptions {
  chalk: ChalkInstance;
}
