// Live-view figures from payload samples and WebRTC counters.
import { describe, expect, it } from "vitest";
import { DelayedPayloads, percentile, PredictionStats, videoFigures, type PredictionSample } from "./stats";
import { parsePayload } from "./payload";

const sample = (receivedAt: number, sequence: number, latencyMs = 5, capturedAtMs = receivedAt - 20): PredictionSample => ({
  receivedAt,
  capturedAtMs,
  sequence,
  latencyMs,
  inferenceMs: latencyMs - 1,
  detections: sequence % 3,
});

describe("prediction statistics", () => {
  it("measures the rate, latencies and missed frames over the window", () => {
    const stats = new PredictionStats(3000);
    // 10 messages 100 ms apart, sequence 1..12 with 4 and 7 missing.
    const sequences = [1, 2, 3, 5, 6, 8, 9, 10, 11, 12];
    sequences.forEach((seq, i) => stats.push(sample(1000 + i * 100, seq, 4 + i)));
    const s = stats.summary(1900);
    expect(s.rate).toBeCloseTo(10);
    expect(s.missed).toBe(2);
    expect(s.serverLatencyP50).toBe(8); // latencies 4..13, nearest-rank median
    expect(s.endToEndP50).toBe(20);
    expect(s.lastDetections).toBe(0);
  });

  it("forgets samples older than the window", () => {
    const stats = new PredictionStats(1000);
    stats.push(sample(0, 1, 100));
    stats.push(sample(100, 2, 100));
    stats.push(sample(2000, 3, 7));
    const s = stats.summary(2000);
    expect(s.samples).toBe(1);
    expect(s.rate).toBeNull();
    expect(s.serverLatencyP50).toBe(7);
    expect(stats.summary(5000).samples).toBe(0);
  });

  it("does not count a pipeline restart (sequence going back) as missed frames", () => {
    const stats = new PredictionStats();
    stats.push(sample(0, 500));
    stats.push(sample(10, 1));
    stats.push(sample(20, 2));
    expect(stats.summary(20).missed).toBe(0);
  });

  it("takes nearest-rank percentiles", () => {
    expect(percentile([], 0.5)).toBeNull();
    expect(percentile([5, 1, 3], 0.5)).toBe(3);
    expect(percentile([1, 2, 3, 4], 0.95)).toBe(4);
  });
});

describe("video figures", () => {
  it("computes frames per second and buffer delay between two readings", () => {
    const first = { timestamp: 10000, framesDecoded: 100, jitterBufferDelay: 1.0, jitterBufferEmittedCount: 100 };
    const second = { timestamp: 12000, framesDecoded: 160, jitterBufferDelay: 2.2, jitterBufferEmittedCount: 160, frameWidth: 640, frameHeight: 480, totalDecodeTime: 0.3 };
    const f = videoFigures({ ...first, totalDecodeTime: 0.18 }, second);
    expect(f.decodeMs).toBeCloseTo(2);
    expect(f.fps).toBeCloseTo(30);
    expect(f.jitterBufferMs).toBeCloseTo(20);
    expect(f.width).toBe(640);
  });
  it("has no rate from a single reading", () => {
    expect(videoFigures(null, { timestamp: 1, framesDecoded: 5 }).fps).toBeNull();
  });
});

describe("payload parsing", () => {
  it("accepts version 1 and ignores anything else", () => {
    const valid = { version: 1, project_id: "p", frame: { sequence: 1 }, detections: [] };
    expect(parsePayload(JSON.stringify(valid))?.frame.sequence).toBe(1);
    expect(parsePayload(JSON.stringify({ ...valid, version: 2 }))).toBeNull();
    expect(parsePayload("not json")).toBeNull();
    expect(parsePayload(JSON.stringify({ version: 1 }))).toBeNull();
  });
});

describe("delayed payloads", () => {
  it("releases the newest payload that is old enough, dropping the ones before it", () => {
    const queue = new DelayedPayloads<string>();
    queue.push("a", 0);
    queue.push("b", 30);
    queue.push("c", 60);
    expect(queue.take(40, 50)).toBeNull();
    expect(queue.take(85, 50)).toBe("b");
    expect(queue.take(85, 50)).toBeNull(); // "a" went with "b"; "c" is not due yet
    expect(queue.take(200, 50)).toBe("c");
    queue.push("d", 300);
    expect(queue.take(300, 0)).toBe("d");
  });
});
