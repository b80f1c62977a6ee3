/**
 * Value vocabularies of the scenario language: errno names, report types, and byte
 * patterns that CPU writes produce and checks compare against.
 *
 * Not a kernel concept: this is the scenario language.
 */
import { z } from 'zod';
import { errno } from '../kernel/errno.ts';
import { Prng } from '../sim/prng.ts';

/** Every errno symbol the model knows (`EINVAL`, `ETIME`, ...). */
export const ERRNO_NAMES = Object.keys(errno) as [string, ...string[]];

/** The report types of DESIGN.md "Rules and reports". */
export const REPORT_TYPES = ['warn', 'lockdep', 'violation', 'leak', 'deadlock', 'bug'] as const;

/** A byte pattern. */
export type Pattern =
  | { fill: number }
  | { iota: number }
  | { random: number }
  | { text: string }
  | { hex: string };

const byte = z.number().int().min(0).max(255);

/** Schema of a byte pattern. */
export const patternSchema = z
  .union(
    [
      z.strictObject({ fill: byte.meta({ description: 'Every byte has this value.' }) }),
      z.strictObject({ iota: byte.meta({ description: 'Byte i is (iota + i) mod 256.' }) }),
      z.strictObject({
        random: z
          .number()
          .int()
          .nonnegative()
          .meta({ description: 'Seeded pseudo-random bytes (the same seed gives the same bytes).' }),
      }),
      z.strictObject({ text: z.string().min(1).meta({ description: 'The text, repeated.' }) }),
      z.strictObject({
        hex: z
          .string()
          .regex(/^(\s*[0-9a-fA-F]{2})+\s*$/, { error: 'expected hex bytes such as "de ad be ef"' })
          .meta({ description: 'Hex bytes, repeated ("de ad be ef").' }),
      }),
    ],
    { error: 'expected a pattern: {fill: n}, {iota: n}, {random: seed}, {text: "..."} or {hex: "de ad"}' },
  )
  .meta({
    id: 'Pattern',
    description: 'A byte pattern: {fill: n}, {iota: n}, {random: seed}, {text: "..."} or {hex: "..."}.',
  });

/** The first `length` bytes of `p`. */
export function patternBytes(p: Pattern, length: number): Uint8Array {
  const out = new Uint8Array(length);
  if ('fill' in p) {
    out.fill(p.fill);
  } else if ('iota' in p) {
    for (let i = 0; i < length; i++) out[i] = (p.iota + i) & 0xff;
  } else if ('random' in p) {
    const prng = new Prng(p.random);
    for (let i = 0; i < length; i += 4) {
      const w = prng.nextU32();
      for (let j = 0; j < 4 && i + j < length; j++) out[i + j] = (w >>> (8 * j)) & 0xff;
    }
  } else {
    const unit =
      'text' in p
        ? new TextEncoder().encode(p.text)
        : Uint8Array.from(p.hex.replace(/\s+/g, '').match(/../g)!, (h) => Number.parseInt(h, 16));
    for (let i = 0; i < length; i++) out[i] = unit[i % unit.length];
  }
  return out;
}

/** A short description of a pattern for reports. */
export function patternText(p: Pattern): string {
  if ('fill' in p) return `fill 0x${p.fill.toString(16).padStart(2, '0')}`;
  if ('iota' in p) return `iota from ${p.iota}`;
  if ('random' in p) return `random seed ${p.random}`;
  if ('text' in p) return `text ${JSON.stringify(p.text)}`;
  return `hex ${p.hex.trim()}`;
}
