// Draws editor annotations inside an SVG whose user units are frame pixels: used by the editor
// and by the prompt thumbnails.
import { useMemo } from "react";
import { hexToRgb } from "../../lib/color";
import { maskToDataUrl } from "../../lib/rle";
import type { EditorShape } from "./editorState";

export function MaskImage({ shape, color, opacity = 130 }: { shape: Extract<EditorShape, { type: "mask" }>; color: string; opacity?: number }) {
  const url = useMemo(
    () => maskToDataUrl(shape.counts, shape.width, shape.height, hexToRgb(color), opacity),
    [shape, color, opacity],
  );
  return <image href={url} x={0} y={0} width={shape.width} height={shape.height} style={{ pointerEvents: "none" }} />;
}

export function ShapeView({
  shape,
  color,
  selected,
  pointRadius = 5,
}: {
  shape: EditorShape;
  color: string;
  selected?: boolean;
  pointRadius?: number;
}) {
  const strokeWidth = selected ? 3 : 1.5;
  switch (shape.type) {
    case "mask":
      return <MaskImage shape={shape} color={color} opacity={selected ? 170 : 120} />;
    case "polygon":
      return (
        <polygon
          points={shape.points.map((p) => `${p.x},${p.y}`).join(" ")}
          fill={color}
          fillOpacity={selected ? 0.45 : 0.3}
          stroke={color}
          strokeWidth={strokeWidth}
          vectorEffect="non-scaling-stroke"
        />
      );
    case "rectangle":
      return (
        <rect
          x={shape.min.x}
          y={shape.min.y}
          width={shape.max.x - shape.min.x}
          height={shape.max.y - shape.min.y}
          fill={color}
          fillOpacity={selected ? 0.3 : 0.15}
          stroke={color}
          strokeWidth={strokeWidth}
          vectorEffect="non-scaling-stroke"
        />
      );
    case "points":
      return (
        <g>
          {shape.points.map((p, i) => (
            <circle
              key={i}
              cx={p.x}
              cy={p.y}
              r={pointRadius}
              fill={p.positive ? color : "#000"}
              stroke={p.positive ? "#fff" : color}
              strokeWidth={selected ? 3 : 1.5}
              vectorEffect="non-scaling-stroke"
            />
          ))}
        </g>
      );
  }
}
