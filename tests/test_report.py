"""`adedge eval --report`: one self-contained HTML page, consistent with the evaluation; and overlays
that colour only the suspicious regions."""

import base64
import io
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from test_cli import _one_line_error, invoke

from adedge.metrics import auroc
from adedge.runtime import Model
from adedge.runtime.evaluation.evaluate import run_evaluation
from adedge.runtime.evaluation.report import PICTURE_WIDTH, WORST, average_precision, roc_curve, write_report
from adedge.runtime.inference.model import Result
from adedge.runtime.inference.verdict import OperatingPoint
from adedge.runtime.line.overlay import overlay

VOID = {"meta", "img", "br", "hr", "input", "link", "rect", "line", "circle", "polyline"}  # no end tag needed


class Page(HTMLParser):
    """The elements of a page, each as (tag, attributes, the section it is in), checking as it
    goes that every element is closed in order."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.open: list[tuple[str, str | None]] = []  # (tag, id)
        self.elements: list[tuple[str, dict[str, str | None], str | None]] = []
        self.doctype = None
        self.feed(text)
        self.close()
        assert not self.open, f"unclosed elements: {self.open}"

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        section = next((element_id for open_tag, element_id in reversed(self.open) if open_tag == "section"), None)
        self.elements.append((tag, dict(attrs), section))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_startendtag(tag, attrs)
        if tag not in VOID:
            self.open.append((tag, dict(attrs).get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.open and self.open[-1][0] == tag, f"</{tag}> closes {self.open[-1:] or 'nothing'}"
        self.open.pop()

    def find(self, tag: str | None = None, section: str | None = None, **attributes: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs, s in self.elements if (tag is None or t == tag) and (section is None or s == section)
                and all(attrs.get(key.replace("_", "-")) == value for key, value in attributes.items())]

    def count(self, element_id: str) -> int:
        (cell,) = self.find(id=element_id)
        return int(cell["data-count"])


def test_curves_agree_with_the_metrics():
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.4
    scores = np.round(rng.random(200) + labels * 0.5, 1)  # rounded: many ties
    fpr, tpr = roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(labels, scores))
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True])) == pytest.approx((1 + 2 / 3) / 2)


def _result(model_map: np.ndarray, frame_size: tuple[int, int]) -> Result:
    point = OperatingPoint()
    return Result(point.decide(float(model_map.max())), model_map, frame_size, point)


def test_overlay_colours_only_what_nears_the_threshold():
    rng = np.random.default_rng(1)
    image = rng.integers(40, 220, (240, 320, 3), dtype=np.uint8)
    quiet = overlay(image, _result(np.full((16, 16), 0.15, np.float32), image.shape[:2]))
    assert quiet.shape[1] == 320 and quiet.shape[0] > 240  # the text and colour bar go below the frame
    assert np.abs(quiet[:240].astype(int) - image).max() <= 1
    suspicious = np.full((16, 16), 0.15, np.float32)
    suspicious[4:8, 4:8] = 0.9
    loud = overlay(image, _result(suspicious, image.shape[:2]))
    changed = np.abs(loud[:240].astype(int) - image).max(axis=2) > 20
    assert changed[60:120, 80:160].mean() > 0.9 and changed[180:, 200:].mean() < 0.01
    assert not np.array_equal(quiet[240:], loud[240:])  # the strip tells OK from NG


def test_report_is_one_self_contained_page_consistent_with_the_evaluation(openvino_bundle, synthetic, tmp_path):
    evaluation = run_evaluation(Model.load(openvino_bundle, check=0.3), synthetic)
    path = write_report(evaluation, tmp_path / "report", "a bundle on the plates")
    assert path == tmp_path / "report" / "report.html" and sorted(p.name for p in path.parent.iterdir()) == ["report.html"]
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert page.doctype.lower() == "doctype html" and "a bundle on the plates" in text
    assert [tag for tag, _, _ in page.elements if tag in ("html", "head", "title", "style", "body")] == ["html", "head", "title", "style", "body"]
    assert {"verdicts", "curves", "defect-types", "false-rejects", "misses"} <= {a["id"] for a in page.find("section")}
    assert len(page.find("svg", section="curves")) == 3 and page.find("polyline", section="curves")
    # self-contained: nothing to fetch, no scripts
    links = [value for _, attrs, _ in page.elements for key, value in attrs.items() if key in ("src", "href", "xlink:href")]
    assert links and all(value.startswith(("data:", "#")) for value in links)
    assert "://" not in text and not page.find("script") and not page.find("link")

    good, defective = int((~evaluation.labels).sum()), int(evaluation.labels.sum())
    metrics = evaluation.metrics
    assert page.count("good-passed") + page.count("good-checked") + page.count("good-rejected") == good
    assert page.count("defects-missed") + page.count("defects-checked") + page.count("defects-caught") == defective
    assert page.count("good-rejected") == metrics["good_rejected"] and page.count("defects-missed") == metrics["defects_missed"]
    assert page.count("good-checked") == metrics["good_checked"] and page.count("defects-checked") == metrics["defects_checked"]
    assert {a["data-metric"] for a in page.find("td") if "data-metric" in a} == set(metrics)
    defects = {s.defect for s in evaluation.samples if s.anomalous}
    assert sorted(a["data-defect"] for a in page.find("tr", **{"class": "defect"})) == sorted(defects)

    for section, expected in (("false-rejects", min(WORST, good)), ("misses", min(WORST, defective))):
        images = page.find("img", section=section)
        assert len(images) == expected
        for image in images:
            assert image["src"].startswith("data:image/png;base64,")
            picture = Image.open(io.BytesIO(base64.b64decode(image["src"].split(",", 1)[1])))
            assert picture.format == "PNG" and picture.width == PICTURE_WIDTH


def test_eval_report_on_the_command_line(openvino_bundle, synthetic, tmp_path):
    result = invoke("eval", openvino_bundle, "--data", synthetic, "--report", tmp_path / "report", "--check", 0.5)
    assert result.exit_code == 0, result.output
    page = Page((tmp_path / "report" / "report.html").read_text(encoding="utf-8"))
    assert page.find(id="good-rejected") and not page.find(id="good-checked")  # no CHECK band: no CHECK column
    assert invoke("eval", openvino_bundle, "--data", synthetic, "--report", tmp_path / "report").exit_code == 0
    page = Page((tmp_path / "report" / "report.html").read_text(encoding="utf-8"))
    assert page.find(id="good-checked")  # the bundle's CHECK band
    (tmp_path / "taken").write_text("someone's file")
    _one_line_error(invoke("eval", openvino_bundle, "--data", synthetic, "--report", tmp_path / "taken"), "is not a folder")
    assert (tmp_path / "taken").read_text() == "someone's file"
