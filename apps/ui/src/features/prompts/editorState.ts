// The annotation editor's document and its history: the annotations of one visual prompt
// (polygon, mask, points, rectangle, each with a label), changed only through actions so that
// every change can be undone and redone. Conversion to and from the API's annotation shapes.
import type { Schemas } from "../../api/client";

export interface Point {
  x: number;
  y: number;
}

export interface PromptPoint extends Point {
  positive: boolean;
}

export type EditorShape =
  | { type: "polygon"; points: Point[] }
  | { type: "mask"; width: number; height: number; counts: number[] }
  | { type: "points"; points: PromptPoint[] }
  | { type: "rectangle"; min: Point; max: Point };

export interface EditorAnnotation {
  /** Local id, for selection and React keys; the API gives annotations none. */
  id: string;
  labelId: string;
  shape: EditorShape;
  /** The segmenter's predicted IoU, for masks made by click-to-segment. */
  score?: number;
}

export interface EditorHistory {
  past: EditorAnnotation[][];
  present: EditorAnnotation[];
  future: EditorAnnotation[][];
  /** Whether the present differs from what was loaded or last saved. */
  dirty: boolean;
}

export type EditorAction =
  | { type: "load"; annotations: EditorAnnotation[] }
  | { type: "add"; annotation: EditorAnnotation }
  | { type: "remove"; id: string }
  | { type: "relabel"; id: string; labelId: string }
  | { type: "clear" }
  | { type: "undo" }
  | { type: "redo" }
  | { type: "saved" };

/** Steps kept for undo; older ones are forgotten. */
export const HISTORY_LIMIT = 100;

export const emptyHistory: EditorHistory = { past: [], present: [], future: [], dirty: false };

/** Records `next` as a new present: the old one goes to `past`, the redo branch is dropped. */
function commit(state: EditorHistory, next: EditorAnnotation[]): EditorHistory {
  if (next === state.present) return state;
  const past = [...state.past, state.present];
  if (past.length > HISTORY_LIMIT) past.splice(0, past.length - HISTORY_LIMIT);
  return { past, present: next, future: [], dirty: true };
}

export function editorReducer(state: EditorHistory, action: EditorAction): EditorHistory {
  switch (action.type) {
    case "load":
      return { past: [], present: action.annotations, future: [], dirty: false };
    case "add":
      return commit(state, [...state.present, action.annotation]);
    case "remove": {
      if (!state.present.some((a) => a.id === action.id)) return state;
      return commit(
        state,
        state.present.filter((a) => a.id !== action.id),
      );
    }
    case "relabel": {
      const target = state.present.find((a) => a.id === action.id);
      if (!target || target.labelId === action.labelId) return state;
      return commit(
        state,
        state.present.map((a) => (a.id === action.id ? { ...a, labelId: action.labelId } : a)),
      );
    }
    case "clear":
      return state.present.length === 0 ? state : commit(state, []);
    case "undo": {
      if (state.past.length === 0) return state;
      const previous = state.past[state.past.length - 1];
      return {
        past: state.past.slice(0, -1),
        present: previous,
        future: [state.present, ...state.future],
        dirty: true,
      };
    }
    case "redo": {
      if (state.future.length === 0) return state;
      const [next, ...rest] = state.future;
      return { past: [...state.past, state.present], present: next, future: rest, dirty: true };
    }
    case "saved":
      return { ...state, dirty: false };
  }
}

let localIds = 0;
export function newAnnotationId(): string {
  localIds += 1;
  return `a${localIds}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The request body's annotations. */
export function toApiAnnotations(annotations: EditorAnnotation[]): Schemas["Annotation"][] {
  return annotations.map(({ labelId, shape }) => {
    switch (shape.type) {
      case "polygon":
        return { label_id: labelId, shape: { type: "polygon", points: shape.points.map(roundPoint) } };
      case "mask":
        return {
          label_id: labelId,
          shape: { type: "mask", width: shape.width, height: shape.height, counts: shape.counts },
        };
      case "points":
        return {
          label_id: labelId,
          shape: {
            type: "points",
            points: shape.points.map((p) => ({ ...roundPoint(p), positive: p.positive })),
          },
        };
      case "rectangle":
        return {
          label_id: labelId,
          shape: { type: "rectangle", min: roundPoint(shape.min), max: roundPoint(shape.max) },
        };
    }
  });
}

/** Editor annotations from a stored prompt's. */
export function fromApiAnnotations(annotations: Schemas["Annotation"][]): EditorAnnotation[] {
  return annotations.map(({ label_id, shape }) => {
    let editorShape: EditorShape;
    switch (shape.type) {
      case "polygon":
        editorShape = { type: "polygon", points: shape.points.map((p) => ({ x: p.x, y: p.y })) };
        break;
      case "mask":
        editorShape = { type: "mask", width: shape.width, height: shape.height, counts: [...shape.counts] };
        break;
      case "points":
        editorShape = {
          type: "points",
          points: shape.points.map((p) => ({ x: p.x, y: p.y, positive: p.positive !== false })),
        };
        break;
      case "rectangle":
        editorShape = { type: "rectangle", min: { ...shape.min }, max: { ...shape.max } };
        break;
    }
    return { id: newAnnotationId(), labelId: label_id, shape: editorShape };
  });
}

/** Half-pixel precision is plenty and keeps the request small. */
function roundPoint(p: Point): Point {
  return { x: Math.max(0, Math.round(p.x * 2) / 2), y: Math.max(0, Math.round(p.y * 2) / 2) };
}

/** A rectangle from two corners dragged in any direction. */
export function normaliseBox(a: Point, b: Point): { min: Point; max: Point } {
  return {
    min: { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y) },
    max: { x: Math.max(a.x, b.x), y: Math.max(a.y, b.y) },
  };
}

/** Keeps a point inside the frame. */
export function clampToFrame(p: Point, width: number, height: number): Point {
  return { x: Math.min(Math.max(p.x, 0), width), y: Math.min(Math.max(p.y, 0), height) };
}

/** Why the prompt cannot be saved yet, or null when it can. */
export function saveProblem(annotations: EditorAnnotation[], labelIds: string[]): string | null {
  if (annotations.length === 0) return "Add at least one annotation.";
  const unknown = annotations.find((a) => !labelIds.includes(a.labelId));
  if (unknown) return "An annotation has a label that no longer exists: pick another.";
  return null;
}
