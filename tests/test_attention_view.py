"""The attention view (toymodel.views.attention): input checks, self-contained HTML, the numbers it
embeds, and its presence in the executed lessons."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from lesson_views import lesson_views  # noqa: E402  (tests/lesson_views.py)

import toymodel
from toymodel import induction
from toymodel.views import attention
from toymodel.views.attention import (
    attention_view,
    contrast,
    model_attention_view,
    palette,
    readable_token,
    spoken_token,
    token_names,
)
from toymodel.worked_example import run

ROOT = Path(__file__).resolve().parents[1]
CAUSAL3 = np.array([[1, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])


class _Elements(HTMLParser):
    """Every start tag of a fragment: ``(tag, attrs)``, and the text of each ``<script>``."""

    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self._in_script = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append([dict(attrs), ""])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self.scripts[-1][1] += data


def parse(fragment: str) -> _Elements:
    parser = _Elements()
    parser.feed(fragment)
    parser.close()
    return parser


def embedded(fragment: str) -> list[dict]:
    """The JSON data of every view in ``fragment``."""
    return [json.loads(text) for attrs, text in parse(fragment).scripts
            if attrs.get("type") == "application/json" and "tmav-data" in attrs.get("class", "")]


def assert_self_contained(fragment: str) -> None:
    lower = fragment.lower()
    for needle in ("src=", "href=", "http:", "https:", "//unpkg", "cdn", "require(", "import(",
                   "@import", "fetch(", "xmlhttprequest", "url("):
        assert needle not in lower, f"the view's HTML contains {needle!r}"
    elements = parse(fragment)
    assert all("src" not in attrs for tag, attrs in elements.tags)
    assert not [tag for tag, _ in elements.tags if tag in ("link", "iframe", "img", "object")]


# ------------------------------------------------------------------------------------------
# tokens and colours
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token, shown", [
    ("cat", "cat"), (" cat", "\u2423cat"), ("\n", "\u23ce"), ("\t", "\u21e5"), ("", "\u2205"),
    ("a\x00b", "a\\x00b"), ("\r\n", "\u240d\u23ce"),
])
def test_readable_token(token, shown):
    assert readable_token(token) == shown


def test_spoken_token_names_whitespace():
    assert spoken_token(" ") == "space"
    assert spoken_token("\n\n") == "newline newline"
    assert spoken_token(" x") == "\u2423x"
    with pytest.raises(TypeError, match="str"):
        readable_token(3)


def test_palette_is_one_ramp_that_reads_in_greyscale_with_readable_text():
    fills, inks = palette()
    assert fills[0] == "#ffffff" and len(fills) == 101
    lum = [attention._luminance(attention._hex_to_rgb(f)) for f in fills]
    assert all(a >= b for a, b in zip(lum, lum[1:], strict=False)), "lightness must fall monotonically"
    assert all(contrast(f, i) >= 4.5 for f, i in zip(fills, inks, strict=True))


# ------------------------------------------------------------------------------------------
# input checks
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokens, patterns, kwargs, error, message", [
    ("abc", CAUSAL3, {}, TypeError, "list of n_pos str"),
    (["a", 1, "c"], CAUSAL3, {}, TypeError, "token 1 is int"),
    ([], np.zeros((1, 0, 0)), {}, ValueError, "at least one token"),
    (["a", "b"], CAUSAL3, {}, ValueError, r"\[n_heads, 2, 2\].*got \[1, 3, 3\]"),
    (list("abc"), np.ones((2, 2, 3, 3)) / 3, {}, ValueError, r"\[n_heads, n_pos, n_pos\]"),
    (list("abc"), np.zeros((0, 3, 3)), {}, ValueError, "at least one head"),
    (list("abc"), np.ones((3, 3)), {}, ValueError, "head 0, destination 0 sums to 3"),
    (list("abc"), CAUSAL3 * 2 - 0.5, {}, ValueError, r"weights in \[0, 1\]"),
    (list("abc"), np.where(CAUSAL3 == 1, np.nan, CAUSAL3), {}, ValueError, "NaN"),
    (list("abc"), np.full((3, 3), "x"), {}, TypeError, "real numbers"),
    (list("abc"), "patterns", {}, TypeError, "numpy array or torch tensor"),
    (list("abc"), np.ones((3, 3)) / 3, {"causal": True}, ValueError, "later token"),
    (list("abc"), CAUSAL3, {"head_names": ["a", "b"]}, ValueError, "1 distinct names"),
    (list("abc"), np.stack([CAUSAL3] * 2), {"head_names": ["a", "a"]}, ValueError, "distinct"),
    (list("abc"), CAUSAL3, {"head_names": [0]}, TypeError, "head_names"),
    (list("abc"), CAUSAL3, {"decimals": 7}, ValueError, "decimals"),
    (list("abc"), CAUSAL3, {"head": 1}, ValueError, r"head must be an int in \[0, 1\)"),
    (list("abc"), CAUSAL3, {"dest": 3}, ValueError, r"dest must be an int in \[0, 3\)"),
])
def test_bad_input_says_what_was_expected(tokens, patterns, kwargs, error, message):
    with pytest.raises(error, match=message):
        attention_view(tokens, patterns, **kwargs)


def test_accepts_one_head_tensors_and_tuples():
    view = attention_view(("a", "b", "c"), torch.tensor(CAUSAL3, dtype=torch.float32))
    assert view.patterns.shape == (1, 3, 3) and view.causal and view.dest == 2
    assert view.head_names == ["head 0"]
    assert not attention_view(list("ab"), run().pattern).causal
    assert not attention_view(list("abc"), CAUSAL3, causal=False).causal


def test_tiny_negative_weights_show_as_zero():
    view = attention_view(list("ab"), [[1, -1e-9], [0.5, 0.5]])
    html = view.to_html()
    assert view.patterns.min() == 0 and "-0.0" not in html and "-1e" not in html


def test_token_names():
    assert token_names(torch.tensor([3, 7]), {7: "q"}) == ["3", "q"]
    assert token_names([1, 2], lambda i: f"t{i}") == ["t1", "t2"]
    with pytest.raises(TypeError, match="integers"):
        token_names([1.5])


# ------------------------------------------------------------------------------------------
# the HTML
# ------------------------------------------------------------------------------------------


def test_html_is_self_contained_and_small():
    view = attention_view([" x", "\n", "</script>"], CAUSAL3)
    fragment = view.to_html()
    assert_self_contained(fragment)
    assert fragment.count("</script>") == 2  # the token "</script>" is escaped in the JSON
    assert embedded(fragment)[0]["tokens"] == ["\u2423x", "\u23ce", "</script>"]
    assert len(fragment.encode()) < 20_000
    assert 'class="tmav"' in view._repr_html_() and "3 tokens, 1 head" in repr(view)


def test_ids_are_unique_across_views():
    view = attention_view(list("abc"), CAUSAL3)
    page = view.to_html() + view.to_html() + attention_view(list("abc"), CAUSAL3).to_html()
    ids = [attrs["id"] for _, attrs in parse(page).tags if "id" in attrs]
    assert len(ids) == len(set(ids)) and len(ids) >= 9
    roots = [attrs["id"] for tag, attrs in parse(page).tags if "tmav" in attrs.get("class", "")
             .split()]
    assert len(roots) == 3
    for root in roots:  # each script binds to its own view
        assert page.count(f'document.getElementById("{root}")') == 1
    for _, attrs in parse(page).tags:
        for key in ("for", "aria-labelledby", "aria-describedby"):
            if key in attrs:
                assert attrs[key] in ids, f"{key}={attrs[key]} points at no element"


def test_embedded_numbers_are_the_patterns():
    ex = run()
    view = attention_view(ex.tokens, ex.pattern, decimals=4)
    data = embedded(view.to_html())[0]
    np.testing.assert_array_equal(data["patterns"], np.round(ex.pattern[None], 4))
    np.testing.assert_allclose(data["patterns"][0][0], [ex.weight("A", "A"), ex.weight("A", "B")],
                               atol=5e-5)
    assert data["tokens"] == ["A", "B"] and data["causal"] is False
    chips = [attrs for tag, attrs in parse(view.to_html()).tags if tag == "button"
             and "tmav-tok" in attrs["class"]]
    np.testing.assert_allclose([float(c["data-weight"]) for c in chips], ex.pattern[1], atol=5e-5)
    assert view.summary(0, 0) == (f"head 0, from token 'A' (position 0): top sources 'B' "
                                  f"(position 1) {ex.weight('A', 'B'):.4f}, 'A' (position 0) "
                                  f"{ex.weight('A', 'A'):.4f}.")


def test_top_sources_skip_what_shows_as_zero():
    view = attention_view(list("abc"), np.array([[1, 0, 0], [1, 0, 0], [0.999, 0.001, 0]]))
    assert view.top_sources(0, 2) == [(0, 0.999)]
    assert attention_view(list("abc"), CAUSAL3).top_sources(0, 1) == [(0, 0.5), (1, 0.5)]


def test_assets_ship_with_the_package():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {"views/*.js", "views/*.css"} <= set(data["package-data"]["toymodel"])
    js = (Path(attention.__file__).parent / "attention.js").read_text()
    assert "__TMAV_ID__" in js and len(js) < 8_000


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_script_parses(tmp_path):
    script = parse(attention_view(list("ab"), run().pattern).to_html()).scripts[-1][1]
    (tmp_path / "view.js").write_text(script)
    subprocess.run(["node", "--check", str(tmp_path / "view.js")], check=True)


def test_model_view_names_every_head():
    model = induction.load_induction_model()
    example = induction.repeated_tokens(1, half_len=4, seed=2)
    view = model_attention_view(model, example, names={induction.TASK.bos: "BOS"})
    assert view.head_names == ["head 0.0", "head 0.1", "head 1.0", "head 1.1"]
    assert view.tokens[0] == "BOS" and view.causal
    with torch.no_grad():
        _, pattern = model.run_with_pattern(example)
    np.testing.assert_allclose(view.patterns, pattern[0].flatten(0, 1).double(), atol=1e-12)
    one = model_attention_view(toymodel.load_pretrained("max"), [1, 2, 3])
    assert one.head_names[0] == "head 0"
    with pytest.raises(ValueError, match=r"integer ids \[n_pos\]"):
        model_attention_view(model, torch.ones(2, 3))


# ------------------------------------------------------------------------------------------
# in the executed lessons
# ------------------------------------------------------------------------------------------


def html_outputs(name: str) -> list[str]:
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    found = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            html = "".join(output.get("data", {}).get("text/html", []))
            if 'class="tmav"' in html:
                found.append(html)
    return found


@pytest.mark.parametrize("name", ["01_worked_example", "02_one_layer_model", "04_two_layers",
                                  "05_language_one_layer", "06_language_two_layers"])
def test_lessons_show_the_view_with_the_packages_numbers(name):
    outputs = html_outputs(name)
    assert len(outputs) == 1, f"{name}: expected one attention view among the outputs"
    assert_self_contained(outputs[0])
    data = embedded(outputs[0])[0]
    expected = lesson_views()[name]
    assert data["tokens"] == [readable_token(t) for t in expected.tokens]
    # float rounding differs across CPUs (toolchain notes): a last-digit flip at most
    np.testing.assert_allclose(data["patterns"], expected.patterns, atol=2e-4)
