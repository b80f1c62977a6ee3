/**
 * Where the scenario files that ship with dmabuf-lab are: `scenarios/` and
 * `schema/` at the package root (two levels above this module in src/ and in dist/).
 */
import { fileURLToPath } from 'node:url';

/** The directory of the shipped scenarios. */
export const SCENARIOS_DIR = fileURLToPath(new URL('../../scenarios/', import.meta.url));

/** The JSON Schema file editors point at. */
export const SCHEMA_FILE = fileURLToPath(new URL('../../schema/scenario.schema.json', import.meta.url));

/** The scenario `dmabuf-lab run` runs when no file is given. */
export const DEFAULT_SCENARIO = fileURLToPath(new URL('../../scenarios/seed-flow.yaml', import.meta.url));
