"""A token-level attention view: point at a token and see where each head looks from it.

:func:`attention_view` takes the text as tokens and the patterns of some heads
``[n_heads, n_pos, n_pos]`` (rows: destination, columns: source) and returns an
:class:`AttentionView`. Displayed in a notebook (``_repr_html_``) or written into a web page
(``to_html()``), it is one self-contained HTML fragment: an inline ``<style>``, the data as JSON
and a small inline script (``attention.js`` next to this module), with nothing fetched from
anywhere, so it works in JupyterLab and Colab with no extension and on the book's static site.

What the reader gets:

* the text as a row of token buttons (spaces, newlines and tabs made visible by
  :func:`readable_token`); hovering or focusing one makes it the destination, and every source
  token is shaded by the weight it receives from it, with the weight written under it;
* the left and right arrow keys (and Home, End) move between tokens; a ``<select>`` and a grid
  of per-head thumbnails switch heads;
* a polite live region that says, in words, which sources the destination attends to most.

The colour map is a single blue hue from white (weight 0) to dark blue (weight 1), monotone in
lightness, so it reads in greyscale and for colour-blind readers; text on a shaded token is black
or white, whichever contrasts more (at least 4.5:1). Every number is also in the DOM: each token
button carries ``data-weight`` and the view ``data-head`` / ``data-dest``.

:func:`model_attention_view` runs a :class:`toymodel.model.AttentionOnlyTransformer` on one
sequence and shows every head of every layer.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
from importlib import resources

import numpy as np
import torch

ROUND = 4  # decimals of the weights embedded in the HTML
ROW_SUM_TOL = 1e-3  # |row sum - 1| allowed (float32 patterns, rounding)
MASK_TOL = 1e-6  # weights above the diagonal a causal pattern may have
_BLUES = ["#ffffff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5",
          "#08519c", "#08306b"]
_VISIBLE = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "\r": "\u240d"}
_SPOKEN = {" ": "space", "\n": "newline", "\t": "tab", "\r": "carriage return"}
_COUNTER = itertools.count()


def readable_token(token: str) -> str:
    """``token`` with its invisible characters shown: space ``␣``, newline ``⏎``, tab ``⇥``,
    carriage return ``␍``, other control characters as ``\\xNN``; the empty string as ``∅``."""
    if not isinstance(token, str):
        raise TypeError(f"a token must be a str, got {type(token).__name__}")
    if token == "":
        return "\u2205"
    out = []
    for ch in token:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def spoken_token(token: str) -> str:
    """What a screen reader should say for ``token``: the token itself, or the names of its
    characters when it is only whitespace (``" "`` -> ``"space"``, ``"\\n\\n"`` ->
    ``"newline newline"``)."""
    if token and token.strip() == "":
        return " ".join(_SPOKEN.get(ch, readable_token(ch)) for ch in token)
    return readable_token(token)


def _hex_to_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


def _luminance(rgb) -> float:
    c = np.asarray(rgb, dtype=float) / 255
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(c @ [0.2126, 0.7152, 0.0722])


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    la, lb = sorted((_luminance(_hex_to_rgb(a)), _luminance(_hex_to_rgb(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def palette(n: int = 101) -> tuple[list[str], list[str]]:
    """``(fill, ink)``: ``n`` background colours for weights ``0, 1/(n-1), ..., 1`` (white to dark
    blue, monotone in lightness) and, for each, the text colour (black or white) that contrasts
    more with it."""
    stops = np.array([_hex_to_rgb(c) for c in _BLUES])
    at = np.linspace(0, 1, len(stops))
    fills, inks = [], []
    for w in np.linspace(0, 1, n):
        rgb = [np.interp(w, at, stops[:, i]) for i in range(3)]
        fill = "#" + "".join(f"{round(v):02x}" for v in rgb)
        fills.append(fill)
        inks.append("#000000" if contrast(fill, "#000000") >= contrast(fill, "#ffffff")
                    else "#ffffff")
    return fills, inks


def _as_patterns(patterns, n_pos: int) -> np.ndarray:
    """``patterns`` as float64 ``[n_heads, n_pos, n_pos]`` (a single ``[n_pos, n_pos]`` is one
    head), after checking it is a set of attention patterns over ``n_pos`` tokens."""
    if isinstance(patterns, torch.Tensor):
        patterns = patterns.detach().cpu().double().numpy()
    elif isinstance(patterns, (list, tuple)):
        try:
            patterns = np.asarray(patterns, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(f"patterns must be a rectangular array of numbers: {err}") from None
    if not isinstance(patterns, np.ndarray):
        raise TypeError("patterns must be a numpy array or torch tensor [n_heads, n_pos, n_pos], "
                        f"got {type(patterns).__name__}")
    if patterns.dtype.kind not in "biuf":
        raise TypeError(f"patterns must hold real numbers, got dtype {patterns.dtype}")
    patterns = patterns.astype(np.float64)
    if patterns.ndim == 2:
        patterns = patterns[None]
    expected = f"[n_heads, n_pos, n_pos] = [n_heads, {n_pos}, {n_pos}] (n_pos = len(tokens))"
    if patterns.ndim != 3 or patterns.shape[1:] != (n_pos, n_pos):
        raise ValueError(f"patterns must have shape {expected}, got {list(patterns.shape)}")
    if patterns.shape[0] == 0:
        raise ValueError(f"patterns must hold at least one head: shape {expected}, got "
                         f"{list(patterns.shape)}")
    if not np.isfinite(patterns).all():
        raise ValueError("patterns contains NaN or infinite values; expected weights in [0, 1]")
    if patterns.min() < -MASK_TOL or patterns.max() > 1 + MASK_TOL:
        raise ValueError("patterns must hold weights in [0, 1], got values from "
                         f"{patterns.min():.4g} to {patterns.max():.4g}")
    sums = patterns.sum(-1)  # [n_heads, n_pos]
    bad = np.argwhere(np.abs(sums - 1) > ROW_SUM_TOL)
    if len(bad):
        h, d = bad[0]
        raise ValueError(f"each row of patterns (a destination's weights over the sources) must "
                         f"sum to 1, but head {h}, destination {d} sums to {sums[h, d]:.4g}: pass "
                         "softmax outputs [n_heads, n_dest, n_src], not scores")
    return np.clip(patterns, 0.0, 1.0)  # a -1e-9 would show as "-0.00"


def _is_causal(patterns: np.ndarray) -> bool:
    upper = np.triu(np.ones(patterns.shape[1:], dtype=bool), k=1)
    return bool(np.all(np.abs(patterns[:, upper]) <= MASK_TOL))


class AttentionView:
    """An attention view, displayed by notebooks through ``_repr_html_``.

    Attributes:
        tokens: the tokens as given (tuple of ``n_pos`` str).
        patterns: float64 ``[n_heads, n_pos, n_pos]`` (rows: destination, columns: source).
        head_names: one name per head.
        title: the heading shown above the view.
        causal: True when every weight above the diagonal is zero (future tokens greyed out).
        decimals: decimals of the weights shown on the tokens and in the text alternative.
        head, dest: the head and destination shown first.
    """

    def __init__(self, tokens, patterns, head_names, title, causal, decimals, head, dest):
        self.tokens, self.patterns, self.head_names = tokens, patterns, head_names
        self.title, self.causal, self.decimals = title, causal, decimals
        self.head, self.dest = head, dest

    @property
    def n_heads(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def n_pos(self) -> int:
        return len(self.tokens)

    def weights(self, head: int, dest: int) -> np.ndarray:
        """The weights destination ``dest`` gives every source under ``head``, ``[n_pos]``,
        rounded as the view embeds them."""
        return np.round(self.patterns[head, dest], ROUND)

    def top_sources(self, head: int, dest: int, k: int = 3) -> list[tuple[int, float]]:
        """The ``k`` sources ``dest`` attends to most under ``head``: ``[(position, weight)]``,
        largest first (ties by position), leaving out weights that show as zero (but keeping at
        least one), as the view's text alternative lists them."""
        row = self.weights(head, dest)
        allowed = [j for j in range(self.n_pos) if not (self.causal and j > dest)]
        order = sorted(allowed, key=lambda j: (-row[j], j))
        shown = [j for j in order[:k] if row[j] >= 0.5 * 10.0**-self.decimals]
        return [(j, float(row[j])) for j in (shown or order[:1])]

    def data(self) -> dict:
        """What the view's script reads (embedded as JSON)."""
        fills, inks = palette()
        return {
            "tokens": [readable_token(t) for t in self.tokens],
            "spoken": [spoken_token(t) for t in self.tokens],
            "heads": list(self.head_names),
            "patterns": np.round(self.patterns, ROUND).tolist(),
            "palette": fills, "ink": inks, "decimals": self.decimals, "causal": self.causal,
            "head": self.head, "dest": self.dest, "top": 3,
        }

    def summary(self, head: int, dest: int) -> str:
        """The text alternative for ``(head, dest)``, as the live region says it."""
        spoken = [spoken_token(t) for t in self.tokens]
        top = ", ".join(f"'{spoken[j]}' (position {j}) {w:.{self.decimals}f}"
                        for j, w in self.top_sources(head, dest))
        return (f"{self.head_names[head]}, from token '{spoken[dest]}' (position {dest}): "
                f"top sources {top}.")

    def to_html(self) -> str:
        """One self-contained HTML fragment (a new element id on every call)."""
        data = self.data()
        blob = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:8]
        uid = f"tmav-{digest}-{next(_COUNTER)}"
        safe = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        css = resources.files(__package__).joinpath("attention.css").read_text(encoding="utf-8")
        js = resources.files(__package__).joinpath("attention.js").read_text(encoding="utf-8")
        esc = html.escape
        fills, inks = data["palette"], data["ink"]
        row = self.weights(self.head, self.dest)
        chips = []
        for j, token in enumerate(data["tokens"]):
            off = self.causal and j > self.dest
            k = int(round(row[j] * (len(fills) - 1)))
            style = "" if off else f' style="background:{fills[k]};color:{inks[k]}"'
            cls = "tmav-tok" + (" tmav-masked" if off else "") + (
                " tmav-dest" if j == self.dest else "")
            current = ' aria-current="true"' if j == self.dest else ""
            shown = "\u2013" if off else f"{row[j]:.{self.decimals}f}"
            chips.append(
                f'<button type="button" class="{cls}" data-pos="{j}" data-weight="{row[j]}" '
                f'tabindex="{0 if j == 0 else -1}"{current}{style}>'
                f'<span class="tmav-t">{esc(token)}</span><span class="tmav-w">{shown}</span>'
                "</button>")
        options = "".join(
            f'<option value="{h}"{" selected" if h == self.head else ""}>{esc(name)}</option>'
            for h, name in enumerate(self.head_names))
        thumbs = "".join(self._thumbnail(h, fills) for h in range(self.n_heads))
        mask_note = (" Tokens after the destination are greyed out: a causal mask hides them."
                     if self.causal else "")
        return (
            f'<div class="tmav" id="{uid}" role="group" aria-labelledby="{uid}-title" '
            f'data-head="{self.head}" data-dest="{self.dest}" data-n-pos="{self.n_pos}">'
            f"<style>{css}</style>"
            f'<p class="tmav-title" id="{uid}-title">{esc(self.title)}</p>'
            f'<p class="tmav-help" id="{uid}-help">Point at a token (or Tab to the tokens and use '
            "the left and right arrow keys). The outlined token is the destination; every token "
            f"is shaded by the attention weight it receives from it, written under it.{mask_note}"
            "</p>"
            '<div class="tmav-controls">'
            f'<span><label for="{uid}-head">Head</label> '
            f'<select class="tmav-head" id="{uid}-head">{options}</select></span>'
            '<span class="tmav-legend"><span>weight 0</span><span class="tmav-ramp" '
            'aria-hidden="true"></span><span>1</span></span></div>'
            f'<div class="tmav-tokens" role="toolbar" aria-label="tokens of the text" '
            f'aria-describedby="{uid}-help">{"".join(chips)}</div>'
            f'<p class="tmav-live" aria-live="polite" id="{uid}-live">'
            f"{esc(self.summary(self.head, self.dest))}</p>"
            '<div class="tmav-grid" role="group" aria-label="every head at a glance">'
            f"{thumbs}</div>"
            f'<script type="application/json" class="tmav-data">{safe}</script>'
            f"<script>{js.replace('__TMAV_ID__', uid)}</script></div>"
        )

    def _thumbnail(self, h: int, fills: list[str]) -> str:
        """A button holding head ``h``'s whole pattern as a small SVG heatmap."""
        n = self.n_pos
        size = int(min(120, max(56, 6 * n)))
        levels = np.rint(self.patterns[h] * (len(fills) - 1)).astype(int)
        rects = "".join(
            f'<rect x="{s}" y="{d}" width="1" height="1" fill="{fills[levels[d, s]]}"/>'
            for d in range(n) for s in range(n) if levels[d, s] > 0)
        name = html.escape(self.head_names[h])
        pressed = "true" if h == self.head else "false"
        return (
            f'<button type="button" class="tmav-thumb" data-head="{h}" aria-pressed="{pressed}" '
            f'aria-label="show {name} (its whole pattern: rows destinations, columns sources)">'
            f'<svg aria-hidden="true" focusable="false" width="{size}" height="{size}" '
            f'viewBox="0 0 {n} {n}" shape-rendering="crispEdges">{rects}'
            f'<rect class="tmav-rowmark" x="0" y="{self.dest}" width="{n}" height="1" '
            'vector-effect="non-scaling-stroke"/></svg>'
            f"<span>{name}</span></button>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        heads = "head" if self.n_heads == 1 else "heads"
        return (f"AttentionView({self.title!r}: {self.n_pos} tokens, {self.n_heads} {heads}; "
                "display it in a notebook or on the book's website to explore it)")


def attention_view(tokens, patterns, head_names=None, title="Attention pattern", causal=None,
                   decimals: int = 2, head: int = 0, dest: int | None = None) -> AttentionView:
    """An interactive view of attention patterns over real tokens.

    Args:
        tokens: the text as ``n_pos`` strings (list or tuple of str), as the model saw it;
            whitespace is made visible on screen.
        patterns: attention weights ``[n_heads, n_pos, n_pos]`` (rows: destination, columns:
            source; each row sums to 1), numpy array or torch tensor; ``[n_pos, n_pos]`` is one
            head.
        head_names: ``n_heads`` distinct names (default ``"head 0"``, ``"head 1"``, ...).
        title: the heading shown above the view.
        causal: None to detect it (every weight above the diagonal is zero); True to require a
            causal pattern (ValueError otherwise); False to show every source even if masked.
        decimals: decimals shown (1 to 4).
        head, dest: which head and destination position the view shows first (default: head 0,
            the last position).

    Returns:
        an :class:`AttentionView`.
    """
    if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
        raise TypeError(f"tokens must be a list of n_pos str, got {type(tokens).__name__}")
    bad = [i for i, t in enumerate(tokens) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"tokens must be a list of n_pos str; token {bad[0]} is "
                        f"{type(tokens[bad[0]]).__name__} ({tokens[bad[0]]!r})")
    if not tokens:
        raise ValueError("tokens must hold at least one token (n_pos >= 1)")
    patterns = _as_patterns(patterns, len(tokens))
    n_heads, n_pos = patterns.shape[0], len(tokens)
    if head_names is None:
        head_names = [f"head {h}" for h in range(n_heads)]
    if isinstance(head_names, str) or not all(isinstance(n, str) for n in head_names):
        raise TypeError("head_names must be a list of n_heads str")
    head_names = list(head_names)
    if len(head_names) != n_heads or len(set(head_names)) != n_heads:
        raise ValueError(f"head_names must be {n_heads} distinct names (one per head of patterns "
                         f"[n_heads, n_pos, n_pos] = {list(patterns.shape)}), got {head_names}")
    detected = _is_causal(patterns)
    if causal is None:
        causal = detected
    elif causal and not detected:
        raise ValueError("causal=True but some weight above the diagonal of patterns [n_heads, "
                         "dest, src] is not zero: a destination attends to a later token")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 1 <= decimals <= ROUND:
        raise ValueError(f"decimals must be an int from 1 to {ROUND}, got {decimals!r}")
    dest = n_pos - 1 if dest is None else dest
    for name, value, size in (("head", head, n_heads), ("dest", dest, n_pos)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
                0 <= value < size):
            raise ValueError(f"{name} must be an int in [0, {size}), got {value!r}")
    return AttentionView(tuple(tokens), patterns, head_names, str(title), bool(causal), decimals,
                         int(head), int(dest))


def token_names(ids, names=None) -> list[str]:
    """Strings for integer token ids ``[n_pos]``: ``names[id]`` where ``names`` (a dict or a
    function of the id) gives one, else ``str(id)``."""
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    if not all(isinstance(i, int) for i in ids):
        raise TypeError("token ids must be integers [n_pos]")
    if callable(names):
        return [str(names(i)) for i in ids]
    names = names or {}
    return [str(names.get(i, i)) for i in ids]


def model_attention_view(model, tokens, names=None, title="Attention pattern", **kwargs):
    """Run ``model`` on one sequence and view every head of every layer.

    Args:
        model: a :class:`toymodel.model.AttentionOnlyTransformer`.
        tokens: integer ids ``[n_pos]`` (or ``[1, n_pos]``), tensor, array or list.
        names: how to show a token id (see :func:`token_names`), e.g. ``{task.bos: "BOS"}``.
        title: the heading shown above the view.
        **kwargs: passed on to :func:`attention_view` (``decimals``, ``head``, ``dest``).

    Returns:
        an :class:`AttentionView` of ``n_layers * n_heads`` heads named ``"head L.H"`` (or
        ``"head H"`` for a one-layer model).
    """
    ids = torch.as_tensor(tokens)
    if ids.ndim == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.ndim != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"tokens must be integer ids [n_pos], got shape {list(ids.shape)} and "
                         f"dtype {ids.dtype}")
    device = next(model.parameters()).device
    with torch.no_grad():
        _, pattern = model.run_with_pattern(ids[None].to(device))
    pattern = pattern[0]
    if pattern.ndim == 3:  # one layer: [head, dest, src]
        heads = [f"head {h}" for h in range(pattern.shape[0])]
    else:  # [layer, head, dest, src]
        heads = [f"head {layer}.{h}" for layer in range(pattern.shape[0])
                 for h in range(pattern.shape[1])]
        pattern = pattern.flatten(0, 1)
    return attention_view(token_names(ids, names), pattern, heads, title=title, **kwargs)
