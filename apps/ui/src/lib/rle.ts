// COCO uncompressed run-length encoding, as the API uses it for masks (docs/payload.md): runs
// alternate 0s and 1s starting with 0s, over the pixels in column-major order (down the first
// column, then the next). Masks are handled here as row-major bytes (1 = in the object), the
// order a canvas wants.

/** Decodes `counts` into a row-major mask of `width` x `height` (1 inside, 0 outside). */
export function decodeRle(counts: readonly number[], width: number, height: number): Uint8Array {
  const total = width * height;
  const mask = new Uint8Array(total);
  let position = 0; // column-major position
  let value = 0;
  for (const count of counts) {
    if (count < 0 || !Number.isInteger(count)) throw new Error("RLE counts must be whole numbers");
    const end = position + count;
    if (end > total) throw new Error(`RLE counts add up to more than ${width}x${height}`);
    if (value === 1) {
      for (let p = position; p < end; p++) {
        const x = Math.floor(p / height);
        const y = p - x * height;
        mask[y * width + x] = 1;
      }
    }
    position = end;
    value = 1 - value;
  }
  if (position !== total) throw new Error(`RLE counts add up to ${position}, not ${total}`);
  return mask;
}

/** Encodes a row-major mask into column-major counts, starting with a (possibly 0) run of 0s. */
export function encodeRle(mask: ArrayLike<number>, width: number, height: number): number[] {
  if (mask.length !== width * height) throw new Error("mask size does not match width x height");
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const bit = mask[y * width + x] ? 1 : 0;
      if (bit !== current) {
        counts.push(run);
        current = bit;
        run = 0;
      }
      run++;
    }
  }
  counts.push(run);
  return counts;
}

/** Pixels set, computed from the counts alone (the odd-indexed runs). */
export function rleArea(counts: readonly number[]): number {
  let area = 0;
  for (let i = 1; i < counts.length; i += 2) area += counts[i];
  return area;
}

/** Tight box `[x_min, y_min, x_max, y_max]` (max exclusive) of a row-major mask, or null if empty. */
export function maskBox(
  mask: ArrayLike<number>,
  width: number,
  height: number,
): [number, number, number, number] | null {
  let minX = width,
    minY = height,
    maxX = -1,
    maxY = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (mask[y * width + x]) {
        if (x < minX) minX = x;
        if (x > maxX) maxX = x;
        if (y < minY) minY = y;
        if (y > maxY) maxY = y;
      }
    }
  }
  return maxX < 0 ? null : [minX, minY, maxX + 1, maxY + 1];
}

/** RGBA pixels painting the mask in `rgb` at `alpha` (0-255), transparent elsewhere. */
export function maskToRgba(
  mask: Uint8Array,
  rgb: [number, number, number],
  alpha: number,
): Uint8ClampedArray<ArrayBuffer> {
  const pixels = new Uint8ClampedArray(new ArrayBuffer(mask.length * 4));
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) {
      pixels[i * 4] = rgb[0];
      pixels[i * 4 + 1] = rgb[1];
      pixels[i * 4 + 2] = rgb[2];
      pixels[i * 4 + 3] = alpha;
    }
  }
  return pixels;
}

/** A PNG data URL of the mask in a label colour, for an SVG <image>; browser only (canvas). */
export function maskToDataUrl(
  counts: readonly number[],
  width: number,
  height: number,
  rgb: [number, number, number],
  alpha = 120,
): string {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  if (!context) return "";
  const pixels = maskToRgba(decodeRle(counts, width, height), rgb, alpha);
  context.putImageData(new ImageData(pixels, width, height), 0, 0);
  return canvas.toDataURL("image/png");
}
