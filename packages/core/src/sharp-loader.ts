import type sharpFunction from 'sharp';

let loading: Promise<typeof sharpFunction> | undefined;

/**
 * Loads sharp on first use. Plain 8-bit PNGs never need it, and a worker thread that reads only
 * those starts without loading libvips.
 */
export function loadSharp(): Promise<typeof sharpFunction> {
  loading ??= import('sharp').then((module) => module.default);
  return loading;
}
