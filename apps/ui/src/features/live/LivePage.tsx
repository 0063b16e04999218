// The live view: the active project's annotated video over WebRTC, its detections from the
// `predictions` data channel drawn as a switchable overlay and listed, connection state with
// stop / reconnect, and live figures measured from the payloads, WebRTC statistics and the
// server's event stream. Capturing the current frame starts a new visual prompt.
import { useCallback, useEffect, useRef, useState } from "react";
import { useMutation } from "@tanstack/react-query";
import { api, call } from "../../api/client";
import { keys, useInvalidate, useLabels, useModelStatus, usePipeline, useProject, useSources } from "../../api/queries";
import { ErrorNote } from "../../components/ErrorNote";
import { LabelChip } from "../../components/LabelChip";
import { Link, navigate } from "../../lib/router";
import { useProjectMutations } from "../projects/projectActions";
import { FrameBrowser } from "../sources/FrameBrowser";
import { NAVIGABLE } from "../sources/SourcesPage";
import { LiveConnection, type LiveState } from "./connection";
import { parsePayload, type PredictionPayload } from "./payload";
import {
  DelayedPayloads,
  inboundVideoCounters,
  PredictionStats,
  videoFigures,
  type PredictionSummary,
  type VideoCounters,
  type VideoFigures,
} from "./stats";

const RECONNECT_DELAY_MS = 3000;

function fmt(value: number | null | undefined, unit: string, digits = 1): string {
  return value === null || value === undefined || !Number.isFinite(value) ? "–" : `${value.toFixed(digits)} ${unit}`;
}

export function LivePage({ projectId }: { projectId: string }) {
  const project = useProject(projectId);
  const sources = useSources(projectId);
  const { activate } = useProjectMutations();
  const isActive = project.data?.active === true;
  const activeSource = sources.data?.find((s) => s.active);
  const hasSource = !!activeSource;

  return (
    <div className="page live-page">
      <div className="row">
        <h1>Live view</h1>
        <span className="spacer" />
        <CaptureButton projectId={projectId} disabled={!isActive} />
      </div>
      <ErrorNote error={project.error} />
      {project.data && !isActive && (
        <div className="banner">
          {project.data.name} is not the active project, so its pipeline does not run.{" "}
          <button type="button" className="primary small" onClick={() => activate.mutate(projectId)}>
            Activate it
          </button>
          <ErrorNote error={activate.error} />
        </div>
      )}
      {isActive && sources.data && !hasSource && (
        <div className="banner">
          No active source. <Link to={`/projects/${projectId}/sources`}>Add a source</Link> to see video.
        </div>
      )}
      {isActive && <LiveSession projectId={projectId} />}
      {isActive && activeSource && NAVIGABLE.includes(activeSource.config.source_type) && (
        <FrameBrowser projectId={projectId} sourceId={activeSource.id} />
      )}
    </div>
  );
}

function CaptureButton({ projectId, disabled }: { projectId: string; disabled: boolean }) {
  const invalidate = useInvalidate();
  const capture = useMutation({
    mutationFn: () =>
      call(api.POST("/api/v1/projects/{project_id}/frames", { params: { path: { project_id: projectId } } })),
    onSuccess: (frame) => {
      invalidate(keys.frames(projectId));
      navigate(`/projects/${projectId}/prompts/new?frame=${frame.id}`);
    },
  });
  return (
    <div className="capture">
      <button type="button" className="primary" disabled={disabled || capture.isPending} onClick={() => capture.mutate()}>
        Capture frame
      </button>
      <ErrorNote error={capture.error} prefix="Capture" />
    </div>
  );
}

function LiveSession({ projectId }: { projectId: string }) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const connectionRef = useRef<LiveConnection | null>(null);
  const statsRef = useRef(new PredictionStats());
  const countersRef = useRef<VideoCounters | null>(null);
  const pendingRef = useRef(new DelayedPayloads<PredictionPayload>());
  const videoDelayRef = useRef(0);
  const [state, setState] = useState<LiveState>("idle");
  const [channelState, setChannelState] = useState<RTCDataChannelState | "none">("none");
  const [error, setError] = useState<unknown>(null);
  const [payload, setPayload] = useState<PredictionPayload | null>(null);
  const [summary, setSummary] = useState<PredictionSummary | null>(null);
  const [video, setVideo] = useState<VideoFigures | null>(null);
  const [overlay, setOverlay] = useState(true);
  const [autoReconnect, setAutoReconnect] = useState(true);
  const [wanted, setWanted] = useState(true);
  const [attempt, setAttempt] = useState(0);
  const labels = useLabels(projectId);

  const stop = useCallback(() => {
    const connection = connectionRef.current;
    connectionRef.current = null;
    void connection?.stop();
  }, []);

  // (Re)connects whenever asked to (wanted) or on a retry (attempt).
  useEffect(() => {
    if (!wanted) return;
    const connection = new LiveConnection(projectId, {
      onState: (next) => setState(next),
      onStream: (stream) => {
        if (videoRef.current) videoRef.current.srcObject = stream;
      },
      onChannelState: setChannelState,
      onMessage: (text, receivedAt) => {
        const parsed = parsePayload(text);
        if (!parsed) return;
        statsRef.current.push({
          receivedAt,
          capturedAtMs: parsed.frame.captured_at_ms,
          sequence: parsed.frame.sequence,
          latencyMs: parsed.frame.latency_ms,
          inferenceMs: parsed.frame.inference_ms,
          detections: parsed.detections.length,
        });
        pendingRef.current.push(parsed, receivedAt);
      },
    });
    connectionRef.current = connection;
    statsRef.current = new PredictionStats();
    countersRef.current = null;
    setError(null);
    connection.start().catch((e: unknown) => {
      setError(e);
      setState("failed");
    });
    return () => {
      void connection.stop();
      if (connectionRef.current === connection) connectionRef.current = null;
    };
  }, [projectId, wanted, attempt]);

  // Each animation frame, show the newest payload the video has caught up with.
  useEffect(() => {
    let frame = requestAnimationFrame(function show() {
      const due = pendingRef.current.take(Date.now(), videoDelayRef.current);
      if (due) setPayload(due);
      frame = requestAnimationFrame(show);
    });
    return () => cancelAnimationFrame(frame);
  }, []);

  // Automatic reconnection after a failure or a lost connection.
  useEffect(() => {
    if (!wanted || !autoReconnect || (state !== "failed" && state !== "disconnected")) return;
    const timer = setTimeout(() => setAttempt((n) => n + 1), RECONNECT_DELAY_MS);
    return () => clearTimeout(timer);
  }, [state, wanted, autoReconnect]);

  // Once a second: WebRTC receiver statistics and the payload window's summary.
  useEffect(() => {
    const timer = setInterval(async () => {
      setSummary(statsRef.current.summary(Date.now()));
      const pc = connectionRef.current?.pc;
      if (!pc || pc.connectionState === "closed") return;
      const counters = inboundVideoCounters(await pc.getStats());
      if (counters) {
        const figures = videoFigures(countersRef.current, counters);
        videoDelayRef.current = (figures.jitterBufferMs ?? 0) + (figures.decodeMs ?? 0);
        setVideo(figures);
        countersRef.current = counters;
      }
    }, 1000);
    return () => clearInterval(timer);
  }, []);

  const labelColor = (id: string, fallback: string | null) =>
    labels.data?.find((l) => l.id === id)?.color ?? fallback ?? "#FFFFFF";
  const labelName = (id: string, fallback: string | null) =>
    labels.data?.find((l) => l.id === id)?.name ?? fallback ?? "deleted label";

  return (
    <div className="live-layout">
      <div className="live-main">
        <div className="row toolbar">
          <span className={`chip conn-${state}`} data-testid="connection-state">
            {state}
          </span>
          <span className="muted small-text" data-testid="channel-state">
            data channel: {channelState}
          </span>
          <span className="spacer" />
          <label className="check">
            <input type="checkbox" checked={overlay} onChange={(e) => setOverlay(e.target.checked)} aria-label="Show overlay" />
            Overlay
          </label>
          <label className="check">
            <input type="checkbox" checked={autoReconnect} onChange={(e) => setAutoReconnect(e.target.checked)} />
            Auto-reconnect
          </label>
          {wanted ? (
            <>
              <button type="button" className="small" onClick={() => setAttempt((n) => n + 1)}>
                Reconnect
              </button>
              <button
                type="button"
                className="small"
                onClick={() => {
                  setWanted(false);
                  stop();
                }}
              >
                Stop
              </button>
            </>
          ) : (
            <button type="button" className="small primary" onClick={() => setWanted(true)}>
              Connect
            </button>
          )}
        </div>
        <ErrorNote error={error} prefix="Live view" />
        <div className="video-box">
          <video ref={videoRef} autoPlay playsInline muted data-testid="live-video" />
          {overlay && payload && (
            <svg
              className="overlay"
              viewBox={`0 0 ${payload.frame.width} ${payload.frame.height}`}
              preserveAspectRatio="xMidYMid meet"
              data-testid="live-overlay"
            >
              {payload.detections.map((d, i) => {
                const color = labelColor(d.label_id, d.label_color);
                return (
                  <g key={i} data-testid="overlay-detection">
                    {d.polygon.length > 2 && (
                      <polygon points={d.polygon.map((p) => p.join(",")).join(" ")} fill={color} fillOpacity={0.25} stroke={color} strokeWidth={2} vectorEffect="non-scaling-stroke" />
                    )}
                    <rect x={d.box[0]} y={d.box[1]} width={d.box[2] - d.box[0]} height={d.box[3] - d.box[1]} fill="none" stroke={color} strokeWidth={1.5} strokeDasharray="4 3" vectorEffect="non-scaling-stroke" />
                    <text x={d.box[0] + 2} y={Math.max(12, d.box[1] - 4)} fill={color} className="overlay-text">
                      {labelName(d.label_id, d.label_name)} {Math.round(d.score * 100)}%
                    </text>
                  </g>
                );
              })}
            </svg>
          )}
          {state !== "connected" && <div className="video-note">{state === "connecting" ? "Connecting…" : state}</div>}
        </div>
        <p className="muted small-text">
          The server also draws its detections into the video itself; the overlay switch controls the browser's
          outlines drawn from the data channel.
        </p>
      </div>
      <aside className="live-side">
        <Figures summary={summary} video={video} />
        <PipelineFigures projectId={projectId} />
        <section className="card">
          <h2>
            Detections <span className="muted" data-testid="detection-count">{payload ? payload.detections.length : "–"}</span>
          </h2>
          {payload && (
            <p className="muted small-text">
              frame #{payload.frame.sequence} · {payload.frame.width}×{payload.frame.height}
              {payload.frame.index !== undefined ? ` · source frame ${payload.frame.index + 1}` : ""}
            </p>
          )}
          <ul className="detections" data-testid="detections">
            {payload?.detections.slice(0, 50).map((d, i) => (
              <li key={i}>
                <LabelChip name={labelName(d.label_id, d.label_name)} color={labelColor(d.label_id, d.label_color)} />
                <span className="mono">{(d.score * 100).toFixed(0)}%</span>
                <span className="muted mono small-text">
                  {Math.round(d.box[2] - d.box[0])}×{Math.round(d.box[3] - d.box[1])} at {Math.round(d.box[0])},{Math.round(d.box[1])}
                </span>
              </li>
            ))}
          </ul>
        </section>
      </aside>
    </div>
  );
}

function Figures({ summary, video }: { summary: PredictionSummary | null; video: VideoFigures | null }) {
  return (
    <section className="card figures" data-testid="live-figures">
      <h2>This viewer</h2>
      <dl>
        <dt>Video</dt>
        <dd data-testid="video-fps">{fmt(video?.fps, "fps")}</dd>
        <dt>Resolution</dt>
        <dd>{video?.width ? `${video.width}×${video.height}` : "–"}</dd>
        <dt>Predictions</dt>
        <dd data-testid="prediction-rate">{fmt(summary?.rate, "/s")}</dd>
        <dt title="Capture to published, measured by the server (median of the last 3 s)">Server latency</dt>
        <dd data-testid="server-latency">{fmt(summary?.serverLatencyP50, "ms")}</dd>
        <dt title="Capture on the server to arrival in this browser (includes any clock offset between the machines)">
          Capture → browser
        </dt>
        <dd>{fmt(summary?.endToEndP50, "ms")}</dd>
        <dt>Inference</dt>
        <dd>{fmt(summary?.inferenceP50, "ms")}</dd>
        <dt title="Jitter buffer delay per frame in this browser; the outlines wait as long, plus decoding">Buffer</dt>
        <dd>{fmt(video?.jitterBufferMs, "ms")}</dd>
        <dt>Decode</dt>
        <dd>{fmt(video?.decodeMs, "ms")}</dd>
        <dt title="Results this viewer did not receive (gaps in the frame sequence)">Missed</dt>
        <dd>{summary ? summary.missed : "–"}</dd>
      </dl>
    </section>
  );
}

function PipelineFigures({ projectId }: { projectId: string }) {
  const pipeline = usePipeline();
  const status = useModelStatus(projectId);
  const p = pipeline.data;
  const ours = p?.project_id === projectId;
  return (
    <section className="card figures">
      <h2>Pipeline</h2>
      <ErrorNote error={pipeline.error} />
      {p && ours ? (
        <dl>
          <dt>State</dt>
          <dd>{p.state}</dd>
          <dt>Source</dt>
          <dd>
            {p.source.kind ?? "none"} · {p.source.state} · {fmt(p.source.fps, "fps")}
          </dd>
          <dt>Detector</dt>
          <dd>
            {p.detector.algorithm ?? "none"} · {p.detector.state} · {fmt(p.detector.fps, "fps")}
          </dd>
          <dt>Latency p50/p95</dt>
          <dd>
            {fmt(p.detector.latency_p50_ms, "")}/{fmt(p.detector.latency_p95_ms, "ms")}
          </dd>
          <dt>Dropped</dt>
          <dd>{p.detector.dropped}</dd>
          <dt>Model</dt>
          <dd>
            {status.data?.status ?? "–"}
            {status.data?.status === "downloading" && status.data.progress != null
              ? ` ${Math.round(status.data.progress * 100)}%`
              : ""}
          </dd>
        </dl>
      ) : (
        <p className="muted">Not running for this project.</p>
      )}
      {p?.message && <div className="error-note">{p.message}</div>}
      {ours && p?.source.message && <div className="error-note">Source: {p.source.message}</div>}
      {ours && p?.detector.message && <div className="error-note">Detector: {p.detector.message}</div>}
      {status.data?.error_message && <div className="error-note">Model: {status.data.error_message}</div>}
    </section>
  );
}
