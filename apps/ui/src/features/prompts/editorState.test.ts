// The annotation editor's history: every change undoable and redoable, a new change drops the
// redo branch, the history is bounded, and the API conversion keeps shapes and labels.
import { describe, expect, it } from "vitest";
import {
  editorReducer,
  emptyHistory,
  fromApiAnnotations,
  HISTORY_LIMIT,
  normaliseBox,
  saveProblem,
  toApiAnnotations,
  type EditorAnnotation,
  type EditorHistory,
} from "./editorState";
import { fitView, panBy, zoomAt } from "./viewport";

const polygon = (id: string, labelId = "L1"): EditorAnnotation => ({
  id,
  labelId,
  shape: { type: "polygon", points: [{ x: 0, y: 0 }, { x: 10, y: 0 }, { x: 10, y: 10 }] },
});

function apply(state: EditorHistory, ...actions: Parameters<typeof editorReducer>[1][]): EditorHistory {
  return actions.reduce(editorReducer, state);
}

describe("editor history", () => {
  it("undoes and redoes adds, removals and relabels in order", () => {
    let s = apply(emptyHistory, { type: "add", annotation: polygon("a") }, { type: "add", annotation: polygon("b") });
    s = apply(s, { type: "relabel", id: "a", labelId: "L2" }, { type: "remove", id: "b" });
    expect(s.present.map((a) => [a.id, a.labelId])).toEqual([["a", "L2"]]);
    s = editorReducer(s, { type: "undo" });
    expect(s.present.map((a) => a.id)).toEqual(["a", "b"]);
    s = editorReducer(s, { type: "undo" });
    expect(s.present.find((a) => a.id === "a")?.labelId).toBe("L1");
    s = apply(s, { type: "redo" }, { type: "redo" });
    expect(s.present.map((a) => [a.id, a.labelId])).toEqual([["a", "L2"]]);
    expect(s.dirty).toBe(true);
  });

  it("drops the redo branch when something new is done after an undo", () => {
    let s = apply(emptyHistory, { type: "add", annotation: polygon("a") }, { type: "add", annotation: polygon("b") }, { type: "undo" });
    expect(s.future).toHaveLength(1);
    s = editorReducer(s, { type: "add", annotation: polygon("c") });
    expect(s.future).toHaveLength(0);
    expect(editorReducer(s, { type: "redo" })).toBe(s);
    expect(s.present.map((a) => a.id)).toEqual(["a", "c"]);
  });

  it("ignores changes that change nothing, so they cost no undo step", () => {
    const s = apply(emptyHistory, { type: "add", annotation: polygon("a") });
    expect(editorReducer(s, { type: "remove", id: "nope" })).toBe(s);
    expect(editorReducer(s, { type: "relabel", id: "a", labelId: "L1" })).toBe(s);
    expect(editorReducer(emptyHistory, { type: "clear" })).toBe(emptyHistory);
    expect(editorReducer(emptyHistory, { type: "undo" })).toBe(emptyHistory);
  });

  it("keeps at most HISTORY_LIMIT undo steps", () => {
    let s = emptyHistory;
    for (let i = 0; i < HISTORY_LIMIT + 25; i++) s = editorReducer(s, { type: "add", annotation: polygon(`p${i}`) });
    expect(s.past).toHaveLength(HISTORY_LIMIT);
    for (let i = 0; i < HISTORY_LIMIT + 25; i++) s = editorReducer(s, { type: "undo" });
    expect(s.present).toHaveLength(25);
  });

  it("loading starts a clean history; saving clears the dirty flag", () => {
    let s = apply(emptyHistory, { type: "add", annotation: polygon("a") });
    s = editorReducer(s, { type: "load", annotations: [polygon("x")] });
    expect(s).toMatchObject({ past: [], future: [], dirty: false });
    s = apply(s, { type: "clear" });
    expect(s.dirty).toBe(true);
    expect(editorReducer(s, { type: "saved" }).dirty).toBe(false);
  });
});

describe("API conversion", () => {
  it("round-trips every shape kind with its label", () => {
    const shapes: EditorAnnotation[] = [
      polygon("a"),
      { id: "m", labelId: "L2", shape: { type: "mask", width: 4, height: 2, counts: [1, 3, 4] } },
      { id: "p", labelId: "L1", shape: { type: "points", points: [{ x: 1.26, y: 2, positive: true }, { x: 3, y: 4, positive: false }] } },
      { id: "r", labelId: "L3", shape: { type: "rectangle", min: { x: 1, y: 2 }, max: { x: 5, y: 6 } } },
    ];
    const api = toApiAnnotations(shapes);
    expect(api.map((a) => a.shape.type)).toEqual(["polygon", "mask", "points", "rectangle"]);
    expect(api[2].shape).toEqual({ type: "points", points: [{ x: 1.5, y: 2, positive: true }, { x: 3, y: 4, positive: false }] });
    const back = fromApiAnnotations(api);
    expect(back.map((a) => [a.labelId, a.shape.type])).toEqual(shapes.map((a) => [a.labelId, a.shape.type]));
    expect(back[1].shape).toEqual(shapes[1].shape);
    // Stored points without `positive` are positive (the API's default).
    const defaulted = fromApiAnnotations([{ label_id: "L", shape: { type: "points", points: [{ x: 1, y: 1 }] } }]);
    expect(defaulted[0].shape).toEqual({ type: "points", points: [{ x: 1, y: 1, positive: true }] });
  });

  it("says why a prompt cannot be saved", () => {
    expect(saveProblem([], ["L1"])).toMatch(/at least one/);
    expect(saveProblem([polygon("a", "gone")], ["L1"])).toMatch(/no longer exists/);
    expect(saveProblem([polygon("a")], ["L1"])).toBeNull();
  });

  it("normalises a box dragged in any direction", () => {
    expect(normaliseBox({ x: 9, y: 1 }, { x: 2, y: 7 })).toEqual({ min: { x: 2, y: 1 }, max: { x: 9, y: 7 } });
  });
});

describe("zoom and pan", () => {
  const frame = { width: 640, height: 480 };
  it("keeps the point under the cursor in place when zooming", () => {
    const view = fitView(640, 480);
    const at = { x: 100, y: 300 };
    const zoomed = zoomAt(view, 2, at, frame);
    expect(zoomed.width).toBe(320);
    // The cursor's fraction across the view is unchanged.
    expect((at.x - zoomed.x) / zoomed.width).toBeCloseTo((at.x - view.x) / view.width);
    expect((at.y - zoomed.y) / zoomed.height).toBeCloseTo((at.y - view.y) / view.height);
  });
  it("bounds zooming and pans by frame pixels", () => {
    let view = fitView(640, 480);
    for (let i = 0; i < 50; i++) view = zoomAt(view, 2, { x: 0, y: 0 }, frame);
    expect(view.width).toBeGreaterThanOrEqual(16);
    expect(panBy(fitView(640, 480), 10, -5)).toMatchObject({ x: -10, y: 5 });
  });
});
