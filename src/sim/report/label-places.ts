/**
 * Where each point's label goes so that labels do not cover each other or other points. ECharts
 * lays labels out from text widths it estimates in Node, narrower than a browser draws them, so
 * its own overlap handling let neighbouring labels run into each other (the budget points of a
 * sweep, a few pixels apart). Here every label's box is estimated generously, in the chart's own
 * pixels, and each label takes the first of its candidate sides that is free and inside the chart.
 */
export type Side = 'top' | 'bottom' | 'right' | 'left';

/** A side, and how much farther than ECharts' own distance the label sits (its label.distance). */
export interface Place {
  side: Side;
  farther: number;
}

export interface LabelledPoint {
  /** The point's position in the chart, in pixels. */
  px: number;
  py: number;
  text: string;
  /** Sides to try, the preferred first. */
  sides: readonly Side[];
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Generous for 12 px text in a browser's sans-serif (its digits are about 7 px wide). */
export const CHAR_PX = 7.5;
const TEXT_HEIGHT_PX = 16;
/** ECharts' distance from the symbol to its label, plus the symbol's radius. */
const GAP_PX = 5 + 6;

/** Farther out, in pixels, when every side is taken nearer (a crowded corner of the chart). */
const FARTHER_PX = [0, 14, 28];

function boxOf(p: LabelledPoint, side: Side, farther = 0): Box {
  const w = p.text.length * CHAR_PX;
  const h = TEXT_HEIGHT_PX;
  const gap = GAP_PX + farther;
  switch (side) {
    case 'top': return { x: p.px - w / 2, y: p.py - gap - h, w, h };
    case 'bottom': return { x: p.px - w / 2, y: p.py + gap, w, h };
    case 'right': return { x: p.px + gap, y: p.py - h / 2, w, h };
    case 'left': return { x: p.px - gap - w, y: p.py - h / 2, w, h };
  }
}

function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/**
 * A place for each point's label, in order (earlier points are placed first and win): the first
 * free side at ECharts' distance, else farther out. A label with no free place keeps its preferred
 * side. `area` is the region labels must stay inside.
 */
export function placeLabels(points: readonly LabelledPoint[], area: Box): Place[] {
  // Every point's symbol is in the way of every label.
  const taken: Box[] = points.map((p) => ({ x: p.px - 6, y: p.py - 6, w: 12, h: 12 }));
  return points.map((p) => {
    for (const farther of FARTHER_PX) {
      for (const side of p.sides) {
        const box = boxOf(p, side, farther);
        const inside = box.x >= area.x && box.y >= area.y && box.x + box.w <= area.x + area.w && box.y + box.h <= area.y + area.h;
        if (inside && !taken.some((t) => overlaps(t, box))) {
          taken.push(box);
          return { side, farther };
        }
      }
    }
    taken.push(boxOf(p, p.sides[0]!));
    return { side: p.sides[0]!, farther: 0 };
  });
}
