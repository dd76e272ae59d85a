/** Converts 8-bit pixels between grayscale and RGB (ITU-R BT.601 luma for RGB to gray). */
export function convertChannels(pixels: Uint8Array, from: number, to: number): Uint8Array {
  if (from === to) return pixels;
  const count = pixels.length / from;
  const out = new Uint8Array(count * to);
  for (let i = 0; i < count; i++) {
    if (to === 3) {
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = pixels[i];
    } else {
      out[i] = Math.round(0.299 * pixels[3 * i] + 0.587 * pixels[3 * i + 1] + 0.114 * pixels[3 * i + 2]);
    }
  }
  return out;
}
