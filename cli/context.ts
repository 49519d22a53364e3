import type { Style } from './output.js';

/** What every command gets from the top level. */
export interface GlobalOptions {
  style: Style;
}
