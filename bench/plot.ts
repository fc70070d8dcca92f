/**
 * Line charts as plain SVG text, side-by-side panels sharing one legend: the drawing behind
 * benchmarks.svg (bench/report.ts) and soak.svg (bench/soak-report.ts). No dependencies; the
 * numbers are placed by hand so the output is stable text that diffs well.
 */

export interface PlotSeries {
  readonly label: string;
  readonly color: string;
  /** [x, y] in data units; points are joined in the order given. */
  readonly points: readonly (readonly [number, number])[];
  readonly dash?: boolean;
  /** A dot on every point (the bench's sweeps), or a bare line (the soak's time series). */
  readonly dots?: boolean;
}

export interface PlotPanel {
  readonly title: string;
  readonly xLabel: string;
  /** Log scale in decades (values ≤ 0 are not drawn), else linear from 0. */
  readonly logY?: boolean;
  /** x from 0 to the largest x, or to this. */
  readonly xMax?: number;
  /** y from 0 (linear) to the largest y, or to this. */
  readonly yMax?: number;
  /** A dashed grey line from (0, 0) to (xMax, xMax): the ideal of a throughput plot. */
  readonly diagonal?: boolean;
  readonly series: readonly PlotSeries[];
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** 12k for 12 000 and over, whole numbers below. */
export const shortNumber = (n: number): string => (Number.isFinite(n) ? (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n >= 10 || n === 0 ? n.toFixed(0) : n.toFixed(1)) : '–');

/** Panels side by side (two fit the 1000 px width), then one legend of every distinct label. */
export function linePanels(panels: readonly PlotPanel[]): string {
  const W = 1000;
  const panelW = 400;
  const panelH = 280;
  const top = 40;
  const legend = [...new Map(panels.flatMap((p) => p.series).map((s) => [s.label, s])).values()];
  const legendTop = top + panelH + 56;
  const H = legendTop + legend.length * 18 + 8;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
  ];
  panels.forEach((panel, n) => {
    const left = 70 + n * 490;
    const all = panel.series.flatMap((s) => s.points);
    const xMax = panel.xMax ?? Math.max(1, ...all.map(([x]) => x));
    const ys = all.map(([, y]) => y).filter((v) => Number.isFinite(v) && (!panel.logY || v > 0));
    const x = (v: number) => left + (v / xMax) * panelW;
    let y: (v: number) => number;
    out.push(`<text x="${left + panelW / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(panel.title)}</text>`);
    out.push(`<rect x="${left}" y="${top}" width="${panelW}" height="${panelH}" fill="none" stroke="#333"/>`);
    if (panel.logY) {
      const lo = Math.pow(10, Math.floor(Math.log10(Math.min(1, ...ys))));
      const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(10, ...ys))));
      y = (v) => top + panelH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * panelH;
      for (let d = lo; d <= hi; d *= 10) {
        out.push(`<line x1="${left - 4}" y1="${y(d)}" x2="${left + panelW}" y2="${y(d)}" stroke="#ddd"/>`);
        out.push(`<text x="${left - 6}" y="${y(d) + 4}" text-anchor="end">${d >= 1 ? d.toFixed(0) : d}</text>`);
      }
    } else {
      const yMax = panel.yMax ?? Math.max(panel.diagonal ? xMax : 1e-9, ...ys);
      y = (v) => top + panelH - (v / yMax) * panelH;
      for (let i = 0; i <= 4; i++) {
        const v = (yMax * i) / 4;
        out.push(`<line x1="${left - 4}" y1="${y(v)}" x2="${left + panelW}" y2="${y(v)}" stroke="#ddd"/>`);
        out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${shortNumber(v)}</text>`);
      }
    }
    for (let i = 0; i <= 4; i++) {
      const v = (xMax * i) / 4;
      out.push(`<line x1="${x(v)}" y1="${top + panelH}" x2="${x(v)}" y2="${top + panelH + 4}" stroke="#333"/>`);
      out.push(`<text x="${x(v)}" y="${top + panelH + 16}" text-anchor="middle">${shortNumber(v)}</text>`);
    }
    out.push(`<text x="${left + panelW / 2}" y="${top + panelH + 32}" text-anchor="middle">${escapeXml(panel.xLabel)}</text>`);
    if (panel.diagonal) out.push(`<line x1="${x(0)}" y1="${y(0)}" x2="${x(xMax)}" y2="${y(xMax)}" stroke="#999" stroke-dasharray="4 4"/>`);
    for (const s of panel.series) {
      const pts = s.points.filter(([, v]) => Number.isFinite(v) && (!panel.logY || v > 0));
      const line = pts.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
      out.push(`<polyline points="${line}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ' stroke-dasharray="6 3"' : ''}/>`);
      if (s.dots) for (const [px, py] of pts) out.push(`<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
  });
  legend.forEach((s, i) => {
    const ly = legendTop + i * 18;
    out.push(`<rect x="70" y="${ly - 6}" width="16" height="4" fill="${s.color}"/>`);
    out.push(`<text x="92" y="${ly}">${escapeXml(s.label)}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}
