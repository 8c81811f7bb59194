"""`adedge eval --report`: one self-contained HTML page that shows a person what the metrics mean.

The page holds everything inline (SVG charts, base64 PNG overlays, CSS), so it can be mailed,
attached to a ticket or opened on a line-side PC with no network, and nothing it shows can go
missing. Curves are computed here in numpy: the runtime has no scikit-learn and no matplotlib.
"""

import base64
import html
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from adedge.data.images import load_image
from adedge.errors import AdedgeError
from adedge.fileio import write_text_atomic
from adedge.metrics import auroc, ranked_counts
from adedge.runtime.evaluation.evaluate import Evaluation, verdicts_at
from adedge.runtime.inference.model import Result
from adedge.runtime.inference.verdict import OperatingPoint
from adedge.runtime.line.overlay import overlay

REPORT_FILE = "report.html"
WORST = 6  # overlays in each gallery
PICTURE_WIDTH = 320  # pixels: every overlay is drawn at this width, which keeps the page a few MB
BINS = 40
TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212529;
       max-width: 1180px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #dee2e6; }
h3 { font-size: 14px; margin: 0 0 4px; } .subject { font-size: 16px; font-weight: 600; word-break: break-all; }
.muted { color: #6c757d; } nav a { margin-right: 14px; color: #1864ab; }
table { border-collapse: collapse; } th, td { padding: 4px 10px; border: 1px solid #dee2e6; text-align: right; }
th { background: #f1f3f5; } th:first-child, td:first-child { text-align: left; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.confusion td { font-size: 13px; } .confusion b { font-size: 18px; display: block; }
.confusion .right { background: #ebfbee; } .confusion .wrong { background: #fff5f5; } .confusion .check { background: #fff9db; }
figure { margin: 0; } .chart svg { display: block; background: #fff; }
svg text { font: 11px system-ui, sans-serif; fill: #495057; } svg .area { fill: #f8f9fa; stroke: #adb5bd; }
svg .grid { stroke: #e9ecef; } svg .chance { stroke: #adb5bd; stroke-dasharray: 4 3; fill: none; }
svg .curve { stroke: #1864ab; stroke-width: 2; fill: none; } svg .point { fill: #c92a2a; stroke: #fff; }
svg .good { fill: #1c7ed6; } svg .defective { fill: #e8590c; }
svg .threshold { stroke: #c92a2a; stroke-width: 2; } svg .check { stroke: #f08c00; stroke-width: 2; stroke-dasharray: 5 3; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, 322px); gap: 16px; }
.gallery img { display: block; border: 1px solid #dee2e6; }
.gallery figcaption { font-size: 12px; word-break: break-all; }
"""


def _cumulative(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives of flagging score >= each distinct score, the highest first."""
    _, true, flagged = ranked_counts(scores, labels)
    return true, flagged - true


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates from (0, 0) to (1, 1), one point per distinct score (LABELS:
    True = defective); its trapezoidal area is `adedge.metrics.auroc`."""
    labels = np.asarray(labels, bool)
    true, false = _cumulative(np.asarray(scores, np.float64), labels)
    return np.r_[0.0, false / (~labels).sum()], np.r_[0.0, true / labels.sum()]


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision, one point per distinct score, from the highest (the fewest flagged) down."""
    labels = np.asarray(labels, bool)
    true, false = _cumulative(np.asarray(scores, np.float64), labels)
    return true / labels.sum(), true / (true + false)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP: the precision at each distinct score weighted by the recall it adds (the step-wise area
    under the PR curve, no interpolation; scikit-learn's definition)."""
    recall, precision = pr_curve(scores, labels)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class _Plot:
    """A chart's data area inside an SVG: x from 0 to 1 and y from 0 to Y_MAX onto a box of pixels."""

    left: float
    top: float
    width: float
    height: float
    y_max: float = 1.0

    def x(self, value: float) -> float:
        return self.left + value * self.width

    def y(self, value: float) -> float:
        return self.top + self.height * (1.0 - value / self.y_max)

    def axes(self, x_label: str, y_label: str, y_ticks: list[float]) -> str:
        """The box, a grid with its tick values, and the axis names (X_LABEL empty: none)."""
        bottom = self.top + self.height
        parts = [f'<rect class="area" x="{self.left}" y="{self.top}" width="{self.width}" height="{self.height}"/>']
        for value in TICKS:
            x = self.x(value)
            parts.append(f'<line class="grid" x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" y2="{bottom}"/>')
            if x_label:
                parts.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{value:g}</text>')
        for value in y_ticks:
            y = self.y(value)
            parts.append(f'<line class="grid" x1="{self.left}" y1="{y:.1f}" x2="{self.left + self.width}" y2="{y:.1f}"/>')
            parts.append(f'<text x="{self.left - 5}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
        if x_label:
            parts.append(f'<text x="{self.x(0.5):.1f}" y="{bottom + 30}" text-anchor="middle">{html.escape(x_label)}</text>')
        middle = self.top + self.height / 2
        parts.append(f'<text transform="translate({self.left - 34} {middle:.1f}) rotate(-90)" text-anchor="middle">{html.escape(y_label)}</text>')
        return "".join(parts)

    def polyline(self, xs: np.ndarray, ys: np.ndarray, css_class: str) -> str:
        points = " ".join(f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in zip(xs, ys))
        return f'<polyline class="{css_class}" points="{points}"/>'

    def point(self, x: float, y: float, text: str, above: bool) -> str:
        """An operating point, named below it or ABOVE it, on the side towards the middle of the box."""
        cx, cy = self.x(x), self.y(y)
        side = f'x="{cx - 8:.1f}" text-anchor="end"' if x > 0.6 else f'x="{cx + 8:.1f}"'
        return f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="5"/><text {side} y="{cy - 8 if above else cy + 14:.1f}">{html.escape(text)}</text>'

    def cut(self, value: float, css_class: str, text: str, before: bool) -> str:
        """A vertical line at score VALUE across the box, named at its top after it, or BEFORE it
        (TEXT empty: unnamed)."""
        x = self.x(value)
        line = f'<line class="{css_class}" x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" y2="{self.top + self.height}"/>'
        place = f'x="{x - 4:.1f}" text-anchor="end"' if before else f'x="{x + 4:.1f}"'
        return line + (f'<text {place} y="{self.top + 12}">{html.escape(text)}</text>' if text else "")


def _svg(width: int, height: int, body: str, label: str) -> str:
    return f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(label)}">{body}</svg>'


def _cut_offs(point: OperatingPoint) -> list[tuple[str, float, bool]]:
    """The cut-offs to draw: (name, value, whether its name goes before and above it: the CHECK
    band's start, the lower one, so that the two names do not overlap)."""
    return [("threshold", point.threshold, False)] + ([("check", point.check, True)] if point.check is not None else [])


def _roc_chart(scores: np.ndarray, labels: np.ndarray, point: OperatingPoint) -> str:
    plot = _Plot(56, 24, 280, 240)
    fpr, tpr = roc_curve(scores, labels)
    body = plot.axes("false positive rate (good parts rejected)", "true positive rate (defects caught)", list(TICKS))
    body += plot.polyline(np.array([0.0, 1.0]), np.array([0.0, 1.0]), "chance") + plot.polyline(fpr, tpr, "curve")
    for name, cut, before in _cut_offs(point):
        flagged = scores > cut
        body += plot.point(flagged[~labels].mean(), flagged[labels].mean(), f"{name} {cut:.2f}", before)
    return _svg(350, 310, body, "ROC curve")


def _pr_chart(scores: np.ndarray, labels: np.ndarray, point: OperatingPoint) -> str:
    plot = _Plot(56, 24, 280, 240)
    recall, precision = pr_curve(scores, labels)
    steps_x = np.r_[0.0, np.repeat(recall, 2)[:-1]]  # the step-wise curve whose area is the AP
    steps_y = np.repeat(precision, 2)
    body = plot.axes("recall (defects caught)", "precision (rejects that are defects)", list(TICKS))
    body += plot.polyline(np.array([0.0, 1.0]), np.full(2, labels.mean()), "chance") + plot.polyline(steps_x, steps_y, "curve")
    for name, cut, before in _cut_offs(point):
        flagged = scores > cut
        if flagged.any():
            body += plot.point(flagged[labels].mean(), labels[flagged].mean(), f"{name} {cut:.2f}", before)
    return _svg(350, 310, body, "precision-recall curve")


def _histogram_chart(scores: np.ndarray, labels: np.ndarray, point: OperatingPoint) -> str:
    """Good parts' scores above, defective parts' below, each panel on its own count scale (the two
    groups' sizes differ a lot), sharing the 0..1 score axis and the cut-offs."""
    edges = np.linspace(0.0, 1.0, BINS + 1)
    body, top = "", 24
    for css_class, name, chosen in (("good", "good parts", ~labels), ("defective", "defective parts", labels)):
        counts, _ = np.histogram(np.clip(scores[chosen], 0.0, 1.0), edges)
        y_max = max(2, int(counts.max()) + int(counts.max()) % 2)  # even, so that its half is a whole count
        plot = _Plot(56, top, 360, 110, y_max)
        last = css_class == "defective"
        body += plot.axes("score" if last else "", f"{name} ({chosen.sum()})", [0, y_max // 2, y_max])
        for count, start in zip(counts, edges[:-1]):
            if count:
                x, y = plot.x(start), plot.y(count)
                body += f'<rect class="{css_class}" x="{x + 0.5:.1f}" y="{y:.1f}" width="{plot.width / BINS - 1:.1f}" height="{plot.y(0) - y:.1f}"/>'
        for cut_name, cut, before in _cut_offs(point):
            body += plot.cut(cut, cut_name, "" if last else f"{cut_name} {cut:.2f}", before)
        top += 130
    return _svg(430, 310, body, "score histograms")


def _confusion_table(evaluation: Evaluation, called: np.ndarray) -> str:
    """Good parts passed / checked / rejected and defects missed / checked / caught; CHECK only with a CHECK band."""
    labels = ["OK", "NG"] if evaluation.point.check is None else ["OK", "CHECK", "NG"]
    headings = {"OK": "OK (passed)", "CHECK": "CHECK (for a person)", "NG": "NG (rejected)"}
    names = {
        False: {"OK": ("good-passed", "good passed", "right"), "CHECK": ("good-checked", "good checked", "check"),
                "NG": ("good-rejected", "good rejected", "wrong")},
        True: {"OK": ("defects-missed", "defects missed", "wrong"), "CHECK": ("defects-checked", "defects checked", "check"),
               "NG": ("defects-caught", "defects caught", "right")},
    }
    rows = ["<tr><th></th>" + "".join(f"<th>{headings[label]}</th>" for label in labels) + "<th>images</th></tr>"]
    for anomalous, row_name in ((False, "good"), (True, "defective")):
        group = called[evaluation.labels == anomalous]
        cells = []
        for label in labels:
            element_id, text, css_class = names[anomalous][label]
            count = int((group == label).sum())
            cells.append(f'<td id="{element_id}" class="{css_class}" data-count="{count}"><b>{count}</b>{text} ({count / group.size:.1%})</td>')
        rows.append(f'<tr><th>{row_name}</th>{"".join(cells)}<td data-count="{group.size}">{group.size}</td></tr>')
    return f'<table class="confusion">{"".join(rows)}</table>'


def _value(value: float | int) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if np.isfinite(value) else "n/a"
    return str(value)


def _metrics_table(metrics: dict[str, float | int]) -> str:
    rows = "".join(f'<tr><td>{html.escape(key)}</td><td data-metric="{html.escape(key)}">{_value(value)}</td></tr>' for key, value in metrics.items())
    return f'<table class="metrics"><tr><th>metric</th><th>value</th></tr>{rows}</table>'


def _defect_table(evaluation: Evaluation, called: np.ndarray) -> str:
    """Per defect type: its image AUROC against the good images and its recall (NG) at the threshold."""
    good = ~evaluation.labels
    defects = np.array([sample.defect for sample in evaluation.samples])
    rows = ["<tr><th>defect type</th><th>images</th><th>image AUROC (vs good)</th><th>caught (NG)</th><th>recall at threshold</th></tr>"]
    for defect in sorted(set(defects[evaluation.labels])):
        chosen = defects == defect
        both = good | chosen
        caught = int((called[chosen] == "NG").sum())
        rows.append(
            f'<tr class="defect" data-defect="{html.escape(defect)}"><td>{html.escape(defect)}</td><td>{chosen.sum()}</td>'
            f"<td>{auroc(evaluation.labels[both], evaluation.scores[both]):.4f}</td><td>{caught}</td><td>{caught / chosen.sum():.1%}</td></tr>"
        )
    return f'<table class="defects">{"".join(rows)}</table>'


def _png_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(evaluation: Evaluation, index: int) -> str:
    """Image INDEX as an overlay, drawn at PICTURE_WIDTH from the map the evaluation kept."""
    sample, score, point = evaluation.samples[index], float(evaluation.scores[index]), evaluation.point
    image = load_image(sample.path)
    height, width = image.shape[:2]
    size = (PICTURE_WIDTH, max(1, round(height * PICTURE_WIDTH / width)))
    picture = cv2.resize(image, size, interpolation=cv2.INTER_AREA if width > PICTURE_WIDTH else cv2.INTER_LINEAR)
    result = Result(point.decide(score), evaluation.maps[index], picture.shape[:2], point)
    truth = evaluation.masks[index] if evaluation.masks is not None and sample.anomalous else None
    name = html.escape(f"{sample.defect}/{sample.path.name}")
    return (f'<figure><img src="{_png_uri(overlay(picture, result, truth))}" alt="overlay of {name}">'
            f'<figcaption title="{html.escape(str(sample.path))}"><b>{result.label}</b> {score:.3f} · {name}</figcaption></figure>')


def _gallery(evaluation: Evaluation, anomalous: bool) -> str:
    """The good images with the highest scores (the worst false rejects), or the defective images
    with the lowest (the worst misses): up to WORST of them, the worst first."""
    chosen = np.flatnonzero(evaluation.labels == anomalous)
    order = np.argsort(evaluation.scores[chosen], kind="stable")
    worst = chosen[order[:WORST] if anomalous else order[::-1][:WORST]]
    return '<div class="gallery">' + "".join(_figure(evaluation, int(index)) for index in worst) + "</div>"


def _page(evaluation: Evaluation, title: str) -> str:
    scores, labels, point = evaluation.scores, evaluation.labels, evaluation.point
    called = verdicts_at(evaluation.scores, point)
    good, defective = int((~labels).sum()), int(labels.sum())
    defect_types = len({sample.defect for sample in evaluation.samples if sample.anomalous})
    band = f", CHECK above {point.check:.2f}" if point.check is not None else ", no CHECK band"
    written = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rejected, missed = int((called[~labels] == "NG").sum()), int((called[labels] == "OK").sum())
    outlines = " Magenta: the outline of the true defect (its mask)." if evaluation.masks is not None else ""
    sections = [
        f"<header><h1>adedge evaluation</h1><p class=\"subject\">{html.escape(title)}</p>"
        f'<p class="muted">{len(scores)} test images: {good} good, {defective} defective of {defect_types} defect types. '
        f"Verdicts: NG above the threshold {point.threshold:.2f}{band}. Scores are calibrated: 0.5 = the bundle's threshold. "
        f"Written {written}.</p></header>",
        '<nav><a href="#verdicts">verdicts</a><a href="#curves">curves</a><a href="#defect-types">defect types</a>'
        '<a href="#false-rejects">false rejects</a><a href="#misses">misses</a></nav>',
        f'<section id="verdicts"><h2>Verdicts at the threshold</h2><div class="row"><div>{_confusion_table(evaluation, called)}</div>'
        f"<div><h3>Headline metrics</h3>{_metrics_table(evaluation.metrics)}</div></div></section>",
        f'<section id="curves"><h2>Scores</h2><div class="row">'
        f'<figure class="chart"><h3>ROC curve · image AUROC {auroc(labels, scores):.4f}</h3>{_roc_chart(scores, labels, point)}</figure>'
        f'<figure class="chart"><h3>Precision-recall curve · AP {average_precision(scores, labels):.4f}</h3>{_pr_chart(scores, labels, point)}</figure>'
        f'<figure class="chart"><h3>Score histograms</h3>{_histogram_chart(scores, labels, point)}</figure></div></section>',
        f'<section id="defect-types"><h2>Per defect type</h2>{_defect_table(evaluation, called)}</section>',
        f'<section id="false-rejects"><h2>Worst false rejects: the good parts with the highest scores</h2>'
        f'<p class="muted">{rejected} of {good} good parts are rejected (NG). Colour: where the anomaly map nears or passes the '
        f'threshold; red: the outline of the region above it.</p>{_gallery(evaluation, False)}</section>',
        f'<section id="misses"><h2>Worst misses: the defective parts with the lowest scores</h2>'
        f'<p class="muted">{missed} of {defective} defective parts pass as OK.{outlines}</p>{_gallery(evaluation, True)}</section>',
    ]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>adedge evaluation: {html.escape(title)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(sections)}</body></html>\n")


def check_report_folder(out_dir: Path) -> None:
    """Refuse an OUT_DIR that exists and is not a folder, so that `eval --report` fails before it
    spends minutes evaluating, not after."""
    if out_dir.exists() and not out_dir.is_dir():
        raise AdedgeError(f"cannot write the report into {out_dir}: it exists and is not a folder")


def write_report(evaluation: Evaluation, out_dir: Path, title: str) -> Path:
    """Write OUT_DIR/report.html for EVALUATION (TITLE says which bundle on which data) and return
    its path. Written to a scratch file and renamed over it, so a reader never sees half a report."""
    out_dir = Path(out_dir)
    check_report_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    write_text_atomic(path, _page(evaluation, title))
    return path
