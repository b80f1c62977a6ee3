/**
 * Scenario files: the format (schema.ts, step-kind.ts and the built-in steps), the
 * loader with file:line:col messages (load.ts), the runner (runner.ts) and the
 * judging of expectations (expect.ts).
 */
export * from './builtin.ts';
export * from './expect.ts';
export * from './load.ts';
export * from './runner.ts';
export * from './schema.ts';
export * from './step-kind.ts';
export * from './units.ts';
export * from './values.ts';
