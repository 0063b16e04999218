// RLE decode/encode against the worked example of docs/payload.md and round trips.
import { describe, expect, it } from "vitest";
import { decodeRle, encodeRle, maskBox, maskToRgba, rleArea } from "./rle";

describe("COCO RLE (column-major)", () => {
  // docs/payload.md: a 16x12 frame, the instance covers columns 2-5 and rows 3-7.
  const width = 16;
  const height = 12;
  const counts = [27, 5, 7, 5, 7, 5, 7, 5, 124];

  it("decodes the documented example into the documented rectangle", () => {
    const mask = decodeRle(counts, width, height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const inside = x >= 2 && x <= 5 && y >= 3 && y <= 7;
        expect(mask[y * width + x], `pixel ${x},${y}`).toBe(inside ? 1 : 0);
      }
    }
    expect(maskBox(mask, width, height)).toEqual([2, 3, 6, 8]);
    expect(rleArea(counts)).toBe(20);
  });

  it("encodes the rectangle back into the same counts", () => {
    const mask = new Uint8Array(width * height);
    for (let y = 3; y <= 7; y++) for (let x = 2; x <= 5; x++) mask[y * width + x] = 1;
    expect(encodeRle(mask, width, height)).toEqual(counts);
  });

  it("starts with a zero-length run when the top-left pixel is set", () => {
    const mask = new Uint8Array(3 * 2);
    mask[0] = 1;
    expect(encodeRle(mask, 3, 2)).toEqual([0, 1, 5]);
    expect(Array.from(decodeRle([0, 1, 5], 3, 2))).toEqual([1, 0, 0, 0, 0, 0]);
  });

  it("round-trips random masks of odd sizes", () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (const [w, h] of [[1, 1], [5, 3], [17, 11], [64, 9]]) {
      const mask = Uint8Array.from({ length: w * h }, () => (random() < 0.4 ? 1 : 0));
      const encoded = encodeRle(mask, w, h);
      expect(encoded.reduce((a, b) => a + b, 0)).toBe(w * h);
      expect(Array.from(decodeRle(encoded, w, h))).toEqual(Array.from(mask));
      expect(rleArea(encoded)).toBe(mask.reduce((a, b) => a + b, 0));
    }
  });

  it("refuses counts that do not cover the frame exactly", () => {
    expect(() => decodeRle([3, 2], 2, 2)).toThrow(/more than/);
    expect(() => decodeRle([1, 1], 2, 2)).toThrow(/add up to 2, not 4/);
  });

  it("paints only the mask's pixels", () => {
    const rgba = maskToRgba(Uint8Array.from([0, 1]), [10, 20, 30], 99);
    expect(Array.from(rgba)).toEqual([0, 0, 0, 0, 10, 20, 30, 99]);
  });
});
