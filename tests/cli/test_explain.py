"""`circ explain` on a tiny trained model: the overview, a node's tables, JSON, the HTML page, errors,
and the page in a real headless Chromium (the graph drawn, a click filling a node's panel).

Chromium comes from the distribution (``apt-get install chromium chromium-driver``, which
`.ci/run` does), driven by selenium through the distribution's own chromedriver, so nothing
is downloaded at test time. Without the browser the browser test skips locally, and fails
in CI (``CI`` set), where it must run.
"""


from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitdsl.cli import app
from circuitdsl.exit_codes import ExitCode
from circuitdsl.report.explorer import explorer_html
from circuitdsl.verification.results import from_json, to_json

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
runner = CliRunner()


def docs_spec() -> str:
    """The spec of docs/explain.md: the test runs what the page tells a reader to run."""
    page = (ROOT / "docs" / "explain.md").read_text(encoding="utf-8")
    return page.split("```circ\n", 1)[1].split("```", 1)[0]


SPEC = docs_spec()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    """The spec, its cache, and `circ explain --json --report` run on it once (training and pruning a tiny model)."""
    folder = tmp_path_factory.mktemp("explain")
    spec = folder / "tiny.circ"
    spec.write_text(SPEC)
    args = ["explain", str(spec), "--cache-dir", str(folder / "cache")]
    result = runner.invoke(app, [*args, "--json", "--report", str(folder / "explain.html")])
    assert result.exit_code == ExitCode.OK, result.output
    return folder, args, json.loads(result.stdout)


def test_every_node_has_top_examples_a_latent_split_and_its_edges(explained):
    _, _, document = explained
    [circuit] = document["circuits"]
    nodes, explorer = circuit["circuit"]["nodes"], circuit["explorer"]
    assert list(explorer["nodes"]) == nodes and nodes
    edges = {(e["src"], e["dst"]): e["weight"] for e in circuit["circuit"]["edges"]}
    for name, info in explorer["nodes"].items():
        for source in ("task", "mixture"):
            top = info["top"][source]
            assert 1 <= len(top) <= 5
            magnitudes = [abs(ex["value"]) for ex in top]
            assert magnitudes == sorted(magnitudes, reverse=True)
            for ex in top:
                assert 0 <= ex["position"] < len(ex["tokens"])
        # The quote that opened the string is the task's one variable with few values.
        assert [v["value"] for v in info["latents"]["q"]["values"]] == ['"', "'"] or [
            v["value"] for v in info["latents"]["q"]["values"]
        ] == ["'", '"']
        assert "name" in info["skipped_latents"]
        for e in info["in"]:
            assert edges[(e["node"], name)] == pytest.approx(e["weight"], rel=1e-3)
        for e in info["out"]:
            assert edges[(name, e["node"])] == pytest.approx(e["weight"], rel=1e-3)
        assert len(info["in"]) == sum(1 for (_, dst) in edges if dst == name)


def test_some_node_of_a_circuit_that_closes_quotes_tracks_the_quote(explained):
    # The circuit must carry which quote opened the string to the answer; if no node's
    # answer-position activation separated the two quotes, the split would be wrong.
    _, _, document = explained
    explorer = document["circuits"][0]["explorer"]
    assert max(info["latents"]["q"]["eta2"] for info in explorer["nodes"].values()) >= 0.5


def test_a_second_run_gives_the_same_data(explained):
    folder, args, document = explained
    # The first run kept the explorer beside the circuit; the second reads it back.
    assert list((folder / "cache" / "circuits").glob("*/explorer-v*-seed*-top5-n*.json"))
    again = runner.invoke(app, [*args, "--json", "--quiet"])
    assert again.exit_code == ExitCode.OK, again.output
    assert json.loads(again.stdout)["circuits"][0]["explorer"] == document["circuits"][0]["explorer"]


def test_the_terminal_tables_fit_80_columns_and_show_the_highlighted_token(explained):
    _, args, document = explained
    node = document["circuits"][0]["circuit"]["nodes"][0]
    result = runner.invoke(app, [*args, "--node", node, "--top", "3"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == ExitCode.OK, result.output
    out = result.stdout
    assert node in out and "⟦" in out and "⟧" in out
    assert "top examples: quote_close prompts" in out and "training-mixture prompts" in out
    assert "by latent variable" in out and "edges" in out
    widest = max(len(line) for line in out.splitlines())
    assert widest <= 80, f"a line of {widest} columns"


def test_an_unknown_node_is_a_usage_error_with_a_suggestion(explained):
    _, args, document = explained
    node = document["circuits"][0]["circuit"]["nodes"][0]
    typo = node.replace("[", "[9")
    result = runner.invoke(app, [*args, "--node", typo])
    assert result.exit_code == ExitCode.USAGE
    assert f"`{typo}` is not a node of the circuit of `p`" in result.output
    assert "Traceback" not in result.output
    assert runner.invoke(app, [*args, "--top", "0"]).exit_code == ExitCode.USAGE


def test_the_html_page_holds_the_graph_and_every_nodes_data(explained):
    folder, _, document = explained
    page = (folder / "explain.html").read_text()
    circuit = document["circuits"][0]["circuit"]
    assert page.count("class='node") == len(circuit["nodes"])
    assert page.count("<g class='edge'") == len(circuit["edges"])
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page


def test_the_verify_report_shows_the_explorer_from_saved_results(explained):
    # The explorer travels in the results JSON as plain data, so `circ report` renders it.
    _, _, document = explained
    circuit = document["circuits"][0]
    html = explorer_html(circuit["circuit"], circuit["explorer"], {"carrier": [circuit["circuit"]["nodes"][0]]})
    assert "circuit explorer" in html and "carrier" in html
    assert explorer_html(circuit["circuit"], {}, {}) == ""


def test_a_prompt_cannot_break_out_of_the_page():
    explorer = {
        "task": "t",
        "samples": {"task": 1, "mixture": 1},
        "model": {"n_layer": 1},
        "nodes": {
            "0.mlp.post_act[0]": {
                "node": "0.mlp.post_act[0]", "layer": 0, "kind": "mlp.post_act", "index": 0, "head": None,
                "top": {"task": [{"row": 0, "task": "t", "tokens": ["</script><b>"], "position": 0, "answer": "x", "value": 1.0, "at_answer": True}]},
                "stats": {}, "latents": {}, "skipped_latents": {}, "in": [], "out": [],
            }
        },
    }
    html = explorer_html({"nodes": ["0.mlp.post_act[0]"], "edges": []}, explorer)
    assert "</script><b>" not in html


def test_results_carry_the_explorer_through_json():
    from circuitdsl.verification.results import FileResult, HypothesisResult

    run = HypothesisResult("h", "p", "t", (), {"nodes": [], "edges": []}, None, {"seeds": []}, explorer={"nodes": {"a": {}}})
    [back] = from_json(json.loads(json.dumps(to_json(FileResult("f.circ", (run,))))))
    assert back.hypotheses[0].explorer == {"nodes": {"a": {}}}


# ---------------------------------------------------------------- in a browser



def distinct_colours(png: bytes) -> int:
    """How many distinct RGB colours a PNG screenshot holds (decoded here: no imaging library needed)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, colours, prev = zlib.decompress(idat), width * channels, set(), bytearray(width * channels)
    for y in range(0, height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        if y % 4 == 0:
            colours.update(bytes(line[i : i + 3]) for i in range(0, stride, channels * 4))
        prev = line
    return len(colours)


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)) and not os.environ.get("CI"):
        pytest.skip("no chromium/chromedriver (apt-get install -y chromium chromium-driver); CI installs them and runs this")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_in_a_browser_the_graph_is_drawn_and_a_click_shows_the_nodes_panel(explained, browser, tmp_path):
    from selenium.webdriver.common.by import By

    folder, _, document = explained
    report, circuit = folder / "explain.html", document["circuits"][0]
    browser.get(report.as_uri())
    nodes = browser.find_elements(By.CSS_SELECTOR, ".explorer .node")
    edges = browser.find_elements(By.CSS_SELECTOR, ".explorer .edge path")
    assert len(nodes) == len(circuit["circuit"]["nodes"]) > 0
    assert len(edges) == len(circuit["circuit"]["edges"])
    assert all(n.is_displayed() and n.size["width"] > 0 for n in nodes)
    if edges:
        assert any(e.is_displayed() for e in edges)
    before = browser.get_screenshot_as_png()
    (tmp_path / "graph.png").write_bytes(before)
    assert distinct_colours(before) > 8, "the screenshot is blank"

    explorer = circuit["explorer"]["nodes"]
    # The node whose top task prompt is strongest: its panel must show that prompt.
    name = max(explorer, key=lambda n: (abs(explorer[n]["top"]["task"][0]["value"]), n))
    target = browser.find_element(By.CSS_SELECTOR, f".explorer .node[data-node='{name}']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
    target.click()
    panel = browser.find_element(By.CSS_SELECTOR, ".explorer .panel")
    assert name in panel.find_element(By.CSS_SELECTOR, ".panel-title").text
    assert "selected" in target.get_attribute("class")
    rows = panel.find_elements(By.CSS_SELECTOR, ".top-task tr.example")
    assert len(rows) == len(explorer[name]["top"]["task"])
    first = explorer[name]["top"]["task"][0]
    hit = rows[0].find_element(By.CSS_SELECTOR, "mark.hit")
    assert hit.is_displayed()
    assert hit.get_attribute("textContent") == first["tokens"][first["position"]].replace("\n", "\u21b5")
    assert panel.find_elements(By.CSS_SELECTOR, ".top-mixture tr.example")
    latent = panel.find_elements(By.CSS_SELECTOR, ".latents tr.latent-row")
    assert len(latent) == len(explorer[name]["latents"]["q"]["values"])
    assert "q" in panel.find_element(By.CSS_SELECTOR, ".latent-name").text
    assert len(panel.find_elements(By.CSS_SELECTOR, "tr.edge-row")) == len(explorer[name]["in"]) + len(explorer[name]["out"])
    after = browser.get_screenshot_as_png()
    (tmp_path / "panel.png").write_bytes(after)
    assert after != before
