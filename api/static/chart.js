// A small line chart drawn as inline SVG: weeks along x, minutes up y, one series per severity.
// Every text is set as a text node (never parsed as markup).

const SVG = "http://www.w3.org/2000/svg";
const W = 560;
const H = 260;
const M = { left: 58, right: 26, top: 14, bottom: 42 };

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** A round upper bound of the y axis and its tick step. */
function scale(max) {
  if (!(max > 0)) return { top: 10, step: 2 };
  const raw = max / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw);
  return { top: Math.ceil(max / step) * step, step };
}

function tick(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/**
 * Draw into `figure` (replacing what it held):
 *   title: the caption; labels: the x categories (weeks, in order);
 *   series: [{name, className, points: [{index, value, tip}]}] (null values are skipped).
 */
export function lineChart(figure, { title, labels, series, unit }) {
  const plotted = series
    .map((s) => ({ ...s, points: s.points.filter((p) => p.value !== null && p.value !== undefined) }))
    .filter((s) => s.points.length > 0);
  const max = Math.max(0, ...plotted.flatMap((s) => s.points.map((p) => p.value)));
  const { top, step } = scale(max);
  const width = W - M.left - M.right;
  const height = H - M.top - M.bottom;
  const x = (i) => M.left + (labels.length > 1 ? (i * width) / (labels.length - 1) : width / 2);
  const y = (v) => M.top + height - (v / top) * height;

  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": title,
    class: "plot",
  });
  const axes = svg("g", { class: "axes" });
  for (let v = 0; v <= top + step / 2; v += step) {
    axes.append(
      svg("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: "gridline" }),
      svg("text", { x: M.left - 6, y: y(v) + 4, class: "ytick" }, tick(v)),
    );
  }
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((label, i) => {
    if (i % every !== 0 && i !== labels.length - 1) return;
    axes.append(svg("text", { x: x(i), y: H - M.bottom + 16, class: "xtick" }, label.slice(5)));
  });
  axes.append(
    svg("text", { x: 12, y: M.top + height / 2, class: "axis-title",
      transform: `rotate(-90 12 ${M.top + height / 2})` }, unit),
    svg("text", { x: M.left + width / 2, y: H - 6, class: "axis-title" }, "week (Monday, UTC)"),
  );
  chart.append(axes);

  for (const s of plotted) {
    const group = svg("g", { class: `series ${s.className}`, "data-series": s.name });
    const points = s.points.map((p) => `${x(p.index).toFixed(1)},${y(p.value).toFixed(1)}`);
    if (points.length > 1) group.append(svg("polyline", { points: points.join(" ") }));
    for (const p of s.points) {
      group.append(
        svg("circle", { cx: x(p.index), cy: y(p.value), r: 4, "data-value": p.value },
          svg("title", {}, p.tip)),
      );
    }
    chart.append(group);
  }
  if (plotted.length === 0) {
    chart.append(svg("text", { x: W / 2, y: H / 2, class: "empty" }, "No figures in this period"));
  }

  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const s of plotted) {
    const item = document.createElement("li");
    item.className = s.className;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    item.append(swatch, document.createTextNode(s.name));
    legend.append(item);
  }
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.replaceChildren(caption, chart, legend);
}
