// The visual prompt editor: a captured or uploaded frame annotated per label with
// click-to-segment (clicks and/or a box → the server's mask), polygons, points and rectangles;
// undo/redo, zoom/pan, hotkeys; saved as a new visual prompt or replacing an existing one.
import { useCallback, useEffect, useReducer, useRef, useState, type MouseEvent as ReactMouseEvent } from "react";
import { useMutation, useQuery } from "@tanstack/react-query";
import { api, call, type Schemas } from "../../api/client";
import { keys, useInvalidate, useLabels } from "../../api/queries";
import { ErrorNote } from "../../components/ErrorNote";
import { LabelChip } from "../../components/LabelChip";
import { navigate, useLocation } from "../../lib/router";
import { NewLabelForm } from "../labels/LabelsPage";
import {
  clampToFrame,
  editorReducer,
  emptyHistory,
  fromApiAnnotations,
  newAnnotationId,
  normaliseBox,
  saveProblem,
  toApiAnnotations,
  type Point,
  type PromptPoint,
} from "./editorState";
import { MaskImage, ShapeView } from "./ShapeView";
import { useFrameImage } from "./useFrameImage";
import { fitView, panBy, viewBoxAttribute, zoomAt, type ViewBox } from "./viewport";

type Tool = "segment" | "polygon" | "points" | "rectangle" | "pan";

const TOOLS: { tool: Tool; key: string; title: string; help: string }[] = [
  { tool: "segment", key: "s", title: "Segment", help: "Click the object (Shift/right-click: not the object), or drag a box; Enter keeps the mask" },
  { tool: "polygon", key: "p", title: "Polygon", help: "Click the corners; click the first one or press Enter to close; Backspace removes the last" },
  { tool: "points", key: "o", title: "Points", help: "Click points on the object (Shift: background); Enter keeps them" },
  { tool: "rectangle", key: "r", title: "Box", help: "Drag a box around the object" },
  { tool: "pan", key: "h", title: "Pan", help: "Drag to move; the wheel zooms with any tool" },
];

/** Movement (in screen pixels) below which a press counts as a click, not a drag. */
const CLICK_SLOP = 4;

interface SegmentDraft {
  points: PromptPoint[];
  box?: { min: Point; max: Point };
}

export function PromptEditorPage({ projectId, promptId }: { projectId: string; promptId?: string }) {
  const { search } = useLocation();
  const editingId = promptId && promptId !== "new" ? promptId : undefined;
  const prompt = useQuery({
    queryKey: keys.prompt(projectId, editingId ?? "none"),
    enabled: !!editingId,
    queryFn: () =>
      call(
        api.GET("/api/v1/projects/{project_id}/prompts/{prompt_id}", {
          params: { path: { project_id: projectId, prompt_id: editingId! } },
        }),
      ),
  });
  const storedPrompt = prompt.data?.type === "visual" ? prompt.data : undefined;
  const frameId = storedPrompt?.frame_id ?? search.get("frame") ?? undefined;

  if (prompt.error) return <ErrorNote error={prompt.error} prefix="Prompt" />;
  if (editingId && prompt.data && prompt.data.type !== "visual") {
    return <p className="error-note">This is a text prompt; edit it on the Prompts page.</p>;
  }
  if (!frameId) {
    return editingId ? <p className="muted">Loading prompt…</p> : <p className="error-note">No frame chosen: capture or upload one first.</p>;
  }
  if (editingId && !storedPrompt) return <p className="muted">Loading prompt…</p>;
  return <Editor key={`${editingId}-${frameId}`} projectId={projectId} frameId={frameId} stored={storedPrompt} />;
}

function Editor({
  projectId,
  frameId,
  stored,
}: {
  projectId: string;
  frameId: string;
  stored?: Schemas["VisualPrompt"];
}) {
  const invalidate = useInvalidate();
  const labels = useLabels(projectId);
  const frame = useFrameImage(projectId, frameId);
  const [history, dispatch] = useReducer(editorReducer, emptyHistory);
  const [labelId, setLabelId] = useState<string | null>(null);
  const [tool, setTool] = useState<Tool>("segment");
  const [selected, setSelected] = useState<string | null>(null);
  const [hidden, setHidden] = useState(false);
  const [view, setView] = useState<ViewBox | null>(null);
  const [polygon, setPolygon] = useState<Point[]>([]);
  const [pointsDraft, setPointsDraft] = useState<PromptPoint[]>([]);
  const [segment, setSegment] = useState<SegmentDraft>({ points: [] });
  const [drag, setDrag] = useState<{ start: Point; current: Point; screen: { x: number; y: number }; button: number; shift: boolean } | null>(null);
  const [hover, setHover] = useState<Point | null>(null);
  const svgRef = useRef<SVGSVGElement>(null);

  useEffect(() => {
    if (stored) dispatch({ type: "load", annotations: fromApiAnnotations(stored.annotations) });
  }, [stored]);
  useEffect(() => {
    if (frame.data && !view) setView(fitView(frame.data.width, frame.data.height));
  }, [frame.data, view]);
  useEffect(() => {
    if (!labelId && labels.data?.length) setLabelId(labels.data[0].id);
  }, [labels.data, labelId]);

  const labelOf = useCallback((id: string) => labels.data?.find((l) => l.id === id), [labels.data]);
  const currentColor = (labelId && labelOf(labelId)?.color) || "#FFD400";

  // Click-to-segment: every change of the clicks or box asks the server for a new mask.
  const segmentation = useMutation({
    mutationFn: (draft: SegmentDraft) =>
      call(
        api.POST("/api/v1/projects/{project_id}/frames/{frame_id}/segment", {
          params: { path: { project_id: projectId, frame_id: frameId } },
          body: { points: draft.points, box: draft.box ?? null },
        }),
      ),
  });
  const segmentRequest = useRef(0);
  const [preview, setPreview] = useState<Schemas["SegmentResult"] | null>(null);
  const runSegment = useCallback(
    (draft: SegmentDraft) => {
      setSegment(draft);
      const request = ++segmentRequest.current;
      if (draft.points.length === 0 && !draft.box) {
        setPreview(null);
        segmentation.reset();
        return;
      }
      segmentation.mutate(draft, {
        // Only the newest request's answer counts: clicks can come faster than answers.
        onSuccess: (result) => request === segmentRequest.current && setPreview(result),
        onError: () => request === segmentRequest.current && setPreview(null),
      });
    },
    [segmentation],
  );

  const cancelDrafts = useCallback(() => {
    setPolygon([]);
    setPointsDraft([]);
    segmentRequest.current++;
    setSegment({ points: [] });
    setPreview(null);
    segmentation.reset();
  }, [segmentation]);

  const commitDraft = useCallback(() => {
    if (!labelId) return;
    if (tool === "segment" && preview && preview.area > 0) {
      dispatch({
        type: "add",
        annotation: { id: newAnnotationId(), labelId, shape: { type: "mask", ...preview.mask }, score: preview.score },
      });
      cancelDrafts();
    } else if (tool === "polygon" && polygon.length >= 3) {
      dispatch({ type: "add", annotation: { id: newAnnotationId(), labelId, shape: { type: "polygon", points: polygon } } });
      setPolygon([]);
    } else if (tool === "points" && pointsDraft.length > 0) {
      dispatch({ type: "add", annotation: { id: newAnnotationId(), labelId, shape: { type: "points", points: pointsDraft } } });
      setPointsDraft([]);
    }
  }, [labelId, tool, preview, polygon, pointsDraft, cancelDrafts]);

  const save = useMutation({
    mutationFn: () => {
      const body: Schemas["PromptBody"] = { type: "visual", frame_id: frameId, annotations: toApiAnnotations(history.present) };
      return stored
        ? call(
            api.PUT("/api/v1/projects/{project_id}/prompts/{prompt_id}", {
              params: { path: { project_id: projectId, prompt_id: stored.id } },
              body,
            }),
          )
        : call(api.POST("/api/v1/projects/{project_id}/prompts", { params: { path: { project_id: projectId } }, body }));
    },
    onSuccess: () => {
      dispatch({ type: "saved" });
      invalidate(keys.prompts(projectId));
      navigate(`/projects/${projectId}/prompts`);
    },
  });
  const discard = useMutation({
    mutationFn: () =>
      call(
        api.DELETE("/api/v1/projects/{project_id}/frames/{frame_id}", {
          params: { path: { project_id: projectId, frame_id: frameId } },
        }),
      ),
    onSuccess: () => navigate(`/projects/${projectId}/live`),
  });

  const image = frame.data;
  const frameSize = image ? { width: image.width, height: image.height } : null;

  /** Frame coordinates of a mouse event (the SVG's user units are frame pixels). */
  const toFrame = (event: { clientX: number; clientY: number }): Point | null => {
    const svg = svgRef.current;
    const matrix = svg?.getScreenCTM();
    if (!svg || !matrix) return null;
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
    return { x: p.x, y: p.y };
  };
  /** Frame pixels per screen pixel at the current zoom. */
  const unitsPerPixel = () => {
    const svg = svgRef.current;
    if (!svg || !view) return 1;
    const rect = svg.getBoundingClientRect();
    return Math.max(view.width / rect.width, view.height / rect.height);
  };

  const onMouseDown = (event: ReactMouseEvent<SVGSVGElement>) => {
    const p = toFrame(event);
    if (!p) return;
    event.preventDefault();
    setDrag({ start: p, current: p, screen: { x: event.clientX, y: event.clientY }, button: event.button, shift: event.shiftKey });
  };
  const onMouseMove = (event: ReactMouseEvent<SVGSVGElement>) => {
    const p = toFrame(event);
    setHover(p);
    if (!drag || !p || !view) return;
    if (tool === "pan" || drag.button === 1) {
      // Panning moves the view, so measure in screen pixels to keep the grab point steady.
      const scale = unitsPerPixel();
      setView(panBy(view, (event.clientX - drag.screen.x) * scale, (event.clientY - drag.screen.y) * scale));
      setDrag({ ...drag, screen: { x: event.clientX, y: event.clientY } });
    } else {
      setDrag({ ...drag, current: p });
    }
  };
  const onMouseUp = (event: ReactMouseEvent<SVGSVGElement>) => {
    if (!drag || !frameSize) return;
    const moved = Math.hypot(event.clientX - drag.screen.x, event.clientY - drag.screen.y);
    const isClick = moved < CLICK_SLOP;
    const start = clampToFrame(drag.start, frameSize.width, frameSize.height);
    const end = clampToFrame(drag.current, frameSize.width, frameSize.height);
    const negative = drag.button === 2 || drag.shift;
    setDrag(null);
    if (tool === "pan" || drag.button === 1) return;
    if (!labelId) return;
    if (tool === "segment") {
      if (isClick) runSegment({ ...segment, points: [...segment.points, { ...start, positive: !negative }] });
      else runSegment({ ...segment, box: normaliseBox(start, end) });
    } else if (tool === "polygon" && isClick) {
      const closeDistance = 8 * unitsPerPixel();
      if (polygon.length >= 3 && Math.hypot(start.x - polygon[0].x, start.y - polygon[0].y) < closeDistance) {
        dispatch({ type: "add", annotation: { id: newAnnotationId(), labelId, shape: { type: "polygon", points: polygon } } });
        setPolygon([]);
      } else {
        setPolygon([...polygon, start]);
      }
    } else if (tool === "points" && isClick) {
      setPointsDraft([...pointsDraft, { ...start, positive: !negative }]);
    } else if (tool === "rectangle" && !isClick) {
      const box = normaliseBox(start, end);
      if (box.max.x - box.min.x >= 2 && box.max.y - box.min.y >= 2) {
        dispatch({ type: "add", annotation: { id: newAnnotationId(), labelId, shape: { type: "rectangle", ...box } } });
      }
    }
  };

  // The wheel zooms around the cursor; a native listener, since React's is passive.
  useEffect(() => {
    const svg = svgRef.current;
    if (!svg || !frameSize) return;
    const onWheel = (event: WheelEvent) => {
      event.preventDefault();
      const p = toFrame(event);
      if (!p) return;
      setView((v) => (v ? zoomAt(v, event.deltaY < 0 ? 1.2 : 1 / 1.2, p, frameSize) : v));
    };
    svg.addEventListener("wheel", onWheel, { passive: false });
    return () => svg.removeEventListener("wheel", onWheel);
  });

  // Hotkeys, ignored while typing in a field.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (target.closest("input, textarea, select")) return;
      const key = event.key.toLowerCase();
      const mod = event.ctrlKey || event.metaKey;
      if (mod && key === "z") {
        event.preventDefault();
        dispatch({ type: event.shiftKey ? "redo" : "undo" });
      } else if (mod && key === "y") {
        event.preventDefault();
        dispatch({ type: "redo" });
      } else if (mod && key === "s") {
        event.preventDefault();
        if (!saveProblem(history.present, labels.data?.map((l) => l.id) ?? [])) save.mutate();
      } else if (mod) {
        return;
      } else if (key === "enter") {
        commitDraft();
      } else if (key === "escape") {
        cancelDrafts();
        setSelected(null);
      } else if (key === "backspace" && tool === "polygon" && polygon.length > 0) {
        setPolygon(polygon.slice(0, -1));
      } else if (key === "backspace" && tool === "segment" && segment.points.length > 0) {
        runSegment({ ...segment, points: segment.points.slice(0, -1) });
      } else if ((key === "delete" || key === "backspace") && selected) {
        dispatch({ type: "remove", id: selected });
        setSelected(null);
      } else if (key === "0" || key === "f") {
        if (frameSize) setView(fitView(frameSize.width, frameSize.height));
      } else if ((key === "+" || key === "=" || key === "-") && view && frameSize) {
        const centre = { x: view.x + view.width / 2, y: view.y + view.height / 2 };
        setView(zoomAt(view, key === "-" ? 1 / 1.25 : 1.25, centre, frameSize));
      } else if (key === "v") {
        setHidden((h) => !h);
      } else if (/^[1-9]$/.test(key) && labels.data?.[Number(key) - 1]) {
        setLabelId(labels.data[Number(key) - 1].id);
      } else {
        const chosen = TOOLS.find((t) => t.key === key);
        if (chosen) {
          cancelDrafts();
          setTool(chosen.tool);
        }
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  const problem = saveProblem(history.present, labels.data?.map((l) => l.id) ?? []);
  const radius = view ? view.width / 120 : 4;
  const dragBox = drag && (tool === "rectangle" || tool === "segment") && tool !== ("pan" as Tool) ? normaliseBox(drag.start, drag.current) : null;

  return (
    <div className="editor">
      <div className="editor-main">
        <div className="row toolbar">
          <h1 className="inline">{stored ? "Edit visual prompt" : "New visual prompt"}</h1>
          <span className="spacer" />
          {TOOLS.map((t) => (
            <button
              key={t.tool}
              type="button"
              className={`small tool ${tool === t.tool ? "current" : ""}`}
              title={`${t.help} (${t.key.toUpperCase()})`}
              aria-pressed={tool === t.tool}
              onClick={() => {
                cancelDrafts();
                setTool(t.tool);
              }}
            >
              {t.title} <kbd>{t.key.toUpperCase()}</kbd>
            </button>
          ))}
          <span className="sep" />
          <button type="button" className="small" disabled={history.past.length === 0} onClick={() => dispatch({ type: "undo" })} title="Undo (Ctrl+Z)">
            Undo
          </button>
          <button type="button" className="small" disabled={history.future.length === 0} onClick={() => dispatch({ type: "redo" })} title="Redo (Ctrl+Shift+Z)">
            Redo
          </button>
          <button type="button" className="small" onClick={() => frameSize && setView(fitView(frameSize.width, frameSize.height))} title="Fit (0)">
            Fit
          </button>
          <button type="button" className="small" aria-pressed={hidden} onClick={() => setHidden(!hidden)} title="Hide annotations (V)">
            {hidden ? "Show" : "Hide"}
          </button>
        </div>
        <p className="muted small-text tool-help">{TOOLS.find((t) => t.tool === tool)?.help}</p>
        <ErrorNote error={frame.error} prefix="Frame" />
        <div className="canvas-box">
          {image && view && (
            <svg
              ref={svgRef}
              className={`canvas tool-${tool}`}
              viewBox={viewBoxAttribute(view)}
              preserveAspectRatio="xMidYMid meet"
              onMouseDown={onMouseDown}
              onMouseMove={onMouseMove}
              onMouseUp={onMouseUp}
              onMouseLeave={() => {
                setHover(null);
                setDrag(null);
              }}
              onDoubleClick={() => tool === "polygon" && commitDraft()}
              onContextMenu={(event) => event.preventDefault()}
              data-testid="editor-canvas"
              data-frame-width={image.width}
              data-frame-height={image.height}
            >
              <image href={image.url} x={0} y={0} width={image.width} height={image.height} />
              {!hidden &&
                history.present.map((annotation) => (
                  <g
                    key={annotation.id}
                    data-testid="annotation-shape"
                    onMouseDown={(event) => {
                      if (tool === "pan") return;
                      if (event.altKey) {
                        event.stopPropagation();
                        setSelected(annotation.id);
                      }
                    }}
                  >
                    <ShapeView
                      shape={annotation.shape}
                      color={labelOf(annotation.labelId)?.color ?? "#999999"}
                      selected={selected === annotation.id}
                      pointRadius={radius}
                    />
                  </g>
                ))}
              {tool === "segment" && preview && preview.area > 0 && (
                <g data-testid="segment-preview">
                  <MaskImage shape={{ type: "mask", ...preview.mask }} color={currentColor} opacity={150} />
                  {preview.polygon.length > 2 && (
                    <polygon
                      points={preview.polygon.map((p) => `${p.x},${p.y}`).join(" ")}
                      fill="none"
                      stroke="#fff"
                      strokeWidth={1.5}
                      strokeDasharray="5 3"
                      vectorEffect="non-scaling-stroke"
                    />
                  )}
                </g>
              )}
              {tool === "segment" && segment.box && (
                <rect x={segment.box.min.x} y={segment.box.min.y} width={segment.box.max.x - segment.box.min.x} height={segment.box.max.y - segment.box.min.y} fill="none" stroke="#fff" strokeDasharray="6 4" strokeWidth={1.5} vectorEffect="non-scaling-stroke" />
              )}
              {tool === "segment" &&
                segment.points.map((p, i) => (
                  <circle key={i} cx={p.x} cy={p.y} r={radius} fill={p.positive ? "#22c55e" : "#ef4444"} stroke="#fff" strokeWidth={1.5} vectorEffect="non-scaling-stroke" />
                ))}
              {tool === "points" && <ShapeView shape={{ type: "points", points: pointsDraft }} color={currentColor} pointRadius={radius} selected />}
              {tool === "polygon" && polygon.length > 0 && (
                <g>
                  <polyline
                    points={[...polygon, ...(hover ? [hover] : [])].map((p) => `${p.x},${p.y}`).join(" ")}
                    fill={currentColor}
                    fillOpacity={0.15}
                    stroke={currentColor}
                    strokeWidth={2}
                    vectorEffect="non-scaling-stroke"
                  />
                  {polygon.map((p, i) => (
                    <circle key={i} cx={p.x} cy={p.y} r={i === 0 ? radius * 1.3 : radius * 0.7} fill={i === 0 ? "#fff" : currentColor} stroke={currentColor} strokeWidth={1.5} vectorEffect="non-scaling-stroke" />
                  ))}
                </g>
              )}
              {dragBox && Math.abs(drag!.current.x - drag!.start.x) + Math.abs(drag!.current.y - drag!.start.y) > 1 && (
                <rect x={dragBox.min.x} y={dragBox.min.y} width={dragBox.max.x - dragBox.min.x} height={dragBox.max.y - dragBox.min.y} fill="none" stroke={currentColor} strokeWidth={2} strokeDasharray="4 3" vectorEffect="non-scaling-stroke" />
              )}
            </svg>
          )}
          {!image && !frame.error && <p className="muted">Loading frame…</p>}
        </div>
        <div className="row status-line">
          {tool === "segment" && (
            <span data-testid="segment-status">
              {segmentation.isPending
                ? "Segmenting…"
                : preview
                  ? `Mask: ${preview.area} px, score ${preview.score.toFixed(2)} (${preview.sam_model}). Enter keeps it, Esc drops it.`
                  : segment.points.length || segment.box
                    ? ""
                    : "Click the object to segment it."}
            </span>
          )}
          <ErrorNote error={segmentation.error} prefix="Segment" />
          <span className="spacer" />
          {hover && (
            <span className="muted mono small-text">
              {Math.round(hover.x)}, {Math.round(hover.y)} · zoom {image && view ? Math.round((image.width / view.width) * 100) : 100}%
            </span>
          )}
        </div>
      </div>
      <aside className="editor-side">
        <section className="card">
          <h2>Label</h2>
          <ErrorNote error={labels.error} />
          <div className="label-picker" role="radiogroup" aria-label="Label for new annotations">
            {labels.data?.map((label, i) => (
              <button
                type="button"
                key={label.id}
                role="radio"
                aria-checked={labelId === label.id}
                className={`label-option ${labelId === label.id ? "current" : ""}`}
                onClick={() => setLabelId(label.id)}
                title={`Hotkey ${i + 1}`}
              >
                <LabelChip name={label.name} color={label.color} /> {i < 9 && <kbd>{i + 1}</kbd>}
              </button>
            ))}
          </div>
          {labels.data?.length === 0 && <p className="muted">Create a label first.</p>}
          <NewLabelForm projectId={projectId} onCreated={setLabelId} />
        </section>
        <section className="card">
          <h2>
            Annotations <span className="muted">{history.present.length}</span>
          </h2>
          {(tool === "segment" ? preview : tool === "polygon" ? polygon.length >= 3 : pointsDraft.length > 0) && (
            <button type="button" className="primary small" onClick={commitDraft}>
              Keep {tool === "segment" ? "mask" : tool === "polygon" ? "polygon" : "points"} (Enter)
            </button>
          )}
          <ul className="annotations" data-testid="annotation-list">
            {history.present.map((annotation, i) => (
              <li
                key={annotation.id}
                className={selected === annotation.id ? "current" : ""}
                onClick={() => setSelected(annotation.id === selected ? null : annotation.id)}
              >
                <span className="muted">{i + 1}.</span> {annotation.shape.type}
                {annotation.score !== undefined && <span className="muted small-text"> {annotation.score.toFixed(2)}</span>}
                <select
                  aria-label="Annotation label"
                  value={annotation.labelId}
                  onClick={(e) => e.stopPropagation()}
                  onChange={(e) => dispatch({ type: "relabel", id: annotation.id, labelId: e.target.value })}
                  style={{ borderColor: labelOf(annotation.labelId)?.color }}
                >
                  {!labelOf(annotation.labelId) && <option value={annotation.labelId}>(deleted label)</option>}
                  {labels.data?.map((l) => (
                    <option key={l.id} value={l.id}>
                      {l.name}
                    </option>
                  ))}
                </select>
                <button
                  type="button"
                  className="small danger"
                  aria-label="Delete annotation"
                  onClick={(e) => {
                    e.stopPropagation();
                    dispatch({ type: "remove", id: annotation.id });
                  }}
                >
                  ✕
                </button>
              </li>
            ))}
          </ul>
          {history.present.length > 0 && (
            <button type="button" className="small" onClick={() => dispatch({ type: "clear" })}>
              Remove all
            </button>
          )}
        </section>
        <section className="card">
          <button type="button" className="primary wide" disabled={!!problem || save.isPending} onClick={() => save.mutate()} title="Ctrl+S">
            {stored ? "Save prompt" : "Save as visual prompt"}
          </button>
          {problem && <p className="muted small-text">{problem}</p>}
          <ErrorNote error={save.error} prefix="Save" />
          {!stored && (
            <button type="button" className="small" onClick={() => discard.mutate()} disabled={discard.isPending}>
              Discard frame
            </button>
          )}
          <ErrorNote error={discard.error} />
          <details className="hotkeys">
            <summary>Hotkeys</summary>
            <ul className="small-text">
              <li>S, P, O, R, H: tools · 1–9: label</li>
              <li>Enter: keep · Esc: drop the draft · Backspace: last click/corner</li>
              <li>Alt+click a shape to select it, Delete removes it</li>
              <li>Ctrl+Z / Ctrl+Shift+Z: undo / redo · Ctrl+S: save</li>
              <li>Wheel, + and −: zoom · 0: fit · middle-drag or H: pan · V: hide</li>
            </ul>
          </details>
        </section>
      </aside>
    </div>
  );
}
