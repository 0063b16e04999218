// The prediction payload (docs/payload.md) as the data channel delivers it, and its parsing.

export interface PredictionDetection {
  label_id: string;
  label_name: string | null;
  label_color: string | null;
  score: number;
  box: [number, number, number, number];
  polygon: [number, number][];
  mask: { size: [number, number]; counts: number[] };
}

export interface PredictionPayload {
  version: number;
  project_id: string;
  frame: {
    sequence: number;
    captured_at: string;
    captured_at_ms: number;
    width: number;
    height: number;
    index?: number;
    latency_ms: number;
    inference_ms: number;
  };
  detections: PredictionDetection[];
}

/** Parses one message; null when it is not a version-1 payload (ignored rather than fatal). */
export function parsePayload(text: string): PredictionPayload | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!value || typeof value !== "object") return null;
  const p = value as Partial<PredictionPayload>;
  if (p.version !== 1 || !p.frame || !Array.isArray(p.detections)) return null;
  return p as PredictionPayload;
}
