// Zoom and pan of the annotation canvas, as the SVG viewBox: the part of the frame in view.

export interface ViewBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export const MIN_VIEW = 16; // pixels of the frame: the deepest zoom
export function fitView(width: number, height: number): ViewBox {
  return { x: 0, y: 0, width, height };
}

/** Zooms by `factor` (>1 zooms in) keeping the frame point `at` under the cursor. */
export function zoomAt(view: ViewBox, factor: number, at: { x: number; y: number }, frame: { width: number; height: number }): ViewBox {
  const maxWidth = frame.width * 4;
  let width = view.width / factor;
  width = Math.min(Math.max(width, MIN_VIEW), maxWidth);
  const scale = width / view.width;
  const height = view.height * scale;
  return {
    x: at.x - (at.x - view.x) * scale,
    y: at.y - (at.y - view.y) * scale,
    width,
    height,
  };
}

/** Moves the view by a distance in frame pixels. */
export function panBy(view: ViewBox, dx: number, dy: number): ViewBox {
  return { ...view, x: view.x - dx, y: view.y - dy };
}

export function viewBoxAttribute(view: ViewBox): string {
  return `${view.x} ${view.y} ${view.width} ${view.height}`;
}
