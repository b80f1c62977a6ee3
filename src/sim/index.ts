/**
 * The simulation engine's public surface: virtual time, events, tasks, schedulers,
 * the seeded PRNG, the event log and reports.
 */
export * from './engine.ts';
export * from './event-log.ts';
export * from './event-queue.ts';
export * from './prng.ts';
export * from './report.ts';
export * from './scheduler.ts';
export * from './wait-queue.ts';
