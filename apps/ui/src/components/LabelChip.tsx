// A label's name on its colour, used wherever a label appears.
import { textColorOn } from "../lib/color";

export function LabelChip({ name, color }: { name: string; color: string }) {
  return (
    <span className="label-chip" style={{ background: color, color: textColorOn(color) }}>
      {name}
    </span>
  );
}
