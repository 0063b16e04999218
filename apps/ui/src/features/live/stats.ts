// Live-view figures computed from real numbers only: the prediction payloads that arrive on the
// data channel (their capture timestamps, server latency and inference time, sequence numbers)
// and the video receiver's WebRTC statistics (frames decoded over time).

/** What one prediction message tells about timing. */
export interface PredictionSample {
  /** When the browser received it, ms since the epoch (Date.now()). */
  receivedAt: number;
  /** frame.captured_at_ms */
  capturedAtMs: number;
  /** frame.sequence */
  sequence: number;
  /** frame.latency_ms: capture to published, on the server. */
  latencyMs: number;
  /** frame.inference_ms */
  inferenceMs: number;
  detections: number;
}

export interface PredictionSummary {
  /** Predictions per second over the window, null with fewer than two samples. */
  rate: number | null;
  /** Median server latency (capture → published) over the window. */
  serverLatencyP50: number | null;
  /** Median capture → received-in-browser; includes the network and the clocks' offset. */
  endToEndP50: number | null;
  inferenceP50: number | null;
  /** Frames the server processed but this viewer did not get, by the gaps in `sequence`. */
  missed: number;
  lastDetections: number | null;
  samples: number;
}

/** The value below which `p` (0-1) of the sorted values lie (nearest rank). */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank];
}

/** A sliding window of prediction samples. */
export class PredictionStats {
  private samples: PredictionSample[] = [];
  private missedTotal = 0;
  private lastSequence: number | null = null;

  constructor(private readonly windowMs = 3000) {}

  push(sample: PredictionSample): void {
    if (this.lastSequence !== null && sample.sequence > this.lastSequence + 1) {
      this.missedTotal += sample.sequence - this.lastSequence - 1;
    }
    // A lower sequence means the pipeline restarted: start counting gaps afresh.
    this.lastSequence = sample.sequence;
    this.samples.push(sample);
    this.trim(sample.receivedAt);
  }

  private trim(now: number): void {
    const oldest = now - this.windowMs;
    while (this.samples.length > 0 && this.samples[0].receivedAt < oldest) this.samples.shift();
  }

  summary(now: number): PredictionSummary {
    this.trim(now);
    const s = this.samples;
    let rate: number | null = null;
    if (s.length >= 2) {
      const span = s[s.length - 1].receivedAt - s[0].receivedAt;
      rate = span > 0 ? ((s.length - 1) * 1000) / span : null;
    }
    return {
      rate,
      serverLatencyP50: percentile(s.map((x) => x.latencyMs), 0.5),
      endToEndP50: percentile(s.map((x) => x.receivedAt - x.capturedAtMs), 0.5),
      inferenceP50: percentile(s.map((x) => x.inferenceMs), 0.5),
      missed: this.missedTotal,
      lastDetections: s.length ? s[s.length - 1].detections : null,
      samples: s.length,
    };
  }
}

/** The inbound video figures WebRTC statistics give (RTCInboundRtpStreamStats). */
export interface VideoCounters {
  /** ms, RTCStats.timestamp */
  timestamp: number;
  framesDecoded: number;
  framesDropped?: number;
  frameWidth?: number;
  frameHeight?: number;
  jitterBufferDelay?: number;
  jitterBufferEmittedCount?: number;
  /** Seconds spent decoding, summed over framesDecoded. */
  totalDecodeTime?: number;
}

export interface VideoFigures {
  fps: number | null;
  width?: number;
  height?: number;
  /** Average time a frame waits in the jitter buffer, ms, over the interval. */
  jitterBufferMs: number | null;
  /** Average decode time per frame, ms, over the interval. */
  decodeMs: number | null;
  framesDropped?: number;
}

/** Frame rate and buffer delay between two readings of the same inbound video stream. */
export function videoFigures(previous: VideoCounters | null, current: VideoCounters): VideoFigures {
  let fps: number | null = null;
  let jitterBufferMs: number | null = null;
  let decodeMs: number | null = null;
  if (previous && current.timestamp > previous.timestamp) {
    const decoded = current.framesDecoded - previous.framesDecoded;
    fps = decoded >= 0 ? (decoded * 1000) / (current.timestamp - previous.timestamp) : null;
    const emitted = (current.jitterBufferEmittedCount ?? 0) - (previous.jitterBufferEmittedCount ?? 0);
    const delay = (current.jitterBufferDelay ?? 0) - (previous.jitterBufferDelay ?? 0);
    if (emitted > 0) jitterBufferMs = (delay / emitted) * 1000;
    const decodedFrames = current.framesDecoded - previous.framesDecoded;
    const decoding = (current.totalDecodeTime ?? 0) - (previous.totalDecodeTime ?? 0);
    if (decodedFrames > 0 && current.totalDecodeTime !== undefined) decodeMs = (decoding / decodedFrames) * 1000;
  }
  return {
    fps,
    width: current.frameWidth,
    height: current.frameHeight,
    jitterBufferMs,
    decodeMs,
    framesDropped: current.framesDropped,
  };
}

/** Picks the inbound video stream's counters out of a getStats() report. */
export function inboundVideoCounters(report: RTCStatsReport): VideoCounters | null {
  let found: VideoCounters | null = null;
  report.forEach((stat: Record<string, unknown>) => {
    if (stat.type === "inbound-rtp" && (stat.kind === "video" || stat.mediaType === "video")) {
      found = {
        timestamp: Number(stat.timestamp),
        framesDecoded: Number(stat.framesDecoded ?? 0),
        framesDropped: stat.framesDropped as number | undefined,
        frameWidth: stat.frameWidth as number | undefined,
        frameHeight: stat.frameHeight as number | undefined,
        jitterBufferDelay: stat.jitterBufferDelay as number | undefined,
        jitterBufferEmittedCount: stat.jitterBufferEmittedCount as number | undefined,
        totalDecodeTime: stat.totalDecodeTime as number | undefined,
      };
    }
  });
  return found;
}

/**
 * Holds data-channel payloads back by the video's own delay (jitter buffer + decoding), so the
 * browser's outlines are drawn over the frame they belong to: predictions and video leave the
 * server together, but the video spends longer on the way to the screen.
 */
export class DelayedPayloads<T> {
  private queue: { item: T; receivedAt: number }[] = [];

  constructor(private readonly capacity = 120) {}

  push(item: T, receivedAt: number): void {
    this.queue.push({ item, receivedAt });
    if (this.queue.length > this.capacity) this.queue.shift();
  }

  /** The newest item received at least `delayMs` before `now`, or null; older ones are dropped. */
  take(now: number, delayMs: number): T | null {
    let due = -1;
    for (let i = 0; i < this.queue.length; i++) {
      if (this.queue[i].receivedAt <= now - delayMs) due = i;
      else break;
    }
    if (due < 0) return null;
    const { item } = this.queue[due];
    this.queue.splice(0, due + 1);
    return item;
  }

  clear(): void {
    this.queue = [];
  }
}
