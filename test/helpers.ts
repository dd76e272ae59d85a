import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';

/** Encodes a uint8 or int64 array as `.npy` (format 1.0, C order). */
export function npyBytes(values: ArrayLike<number>, shape: number[], dtype: '|u1' | '<i8'): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // The magic, version and length take 10 bytes; numpy pads the header so the data starts on a 64-byte boundary.
  header = header.padEnd(Math.ceil((10 + header.length + 1) / 64) * 64 - 10 - 1, ' ') + '\n';
  const itemSize = dtype === '|u1' ? 1 : 8;
  const out = new Uint8Array(10 + header.length + values.length * itemSize);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const view = new DataView(out.buffer, 10 + header.length);
  for (let i = 0; i < values.length; i++) {
    if (itemSize === 1) view.setUint8(i, values[i]);
    else view.setBigInt64(i * 8, BigInt(values[i]), true);
  }
  return out;
}

/** Writes an `.npz` archive of `.npy` arrays. */
export async function writeNpz(path: string, arrays: Record<string, Uint8Array>): Promise<void> {
  const entries = Object.fromEntries(Object.entries(arrays).map(([name, bytes]) => [`${name}.npy`, bytes]));
  await writeFile(path, zipSync(entries));
}

/** Makes a fresh temporary folder. */
export function temporaryFolder(prefix = 'scarce-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export const BREASTMNIST = 'fixtures/breastmnist/breastmnist.npz';
export const MOBILENET = 'fixtures/mobilenet_v2_0.35_224_notop';
