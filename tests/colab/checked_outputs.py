"""Compare a re-executed lesson's checked cells with the committed notebook, as nbval does.

The rule is ``pytest --nbval-lax``'s (nbval 0.11, ``IPyNbCell.compare_outputs``): a cell tagged
``nbval-check-output`` must print what the committed cell printed. Streams of the same name are
joined first; every output's fields and every MIME type of its data are compared exactly, except
``metadata``, ``traceback``, ``execution_count``, images (PNG, JPEG) and widget model ids, which
differ between runs. So a glued number (``application/papermill.record/...``) and an HTML view are
compared too, not only the printed text.

Used by ``tests/colab/execute.py`` (inside the Colab-like environment, which has no nbval) and by
``tests/test_lesson_solutions.py`` (which executes every lesson once for its solutions and its
checked outputs, under ``make other-kernels``). The Colab-like run leaves out the glue records
(``ignore=GLUE``): Colab has no myst-nb, so ``toymodel.book.glue`` records nothing there, by design.
Standard library only.
"""

from __future__ import annotations

import re
from collections import defaultdict

CHECK_TAG = "nbval-check-output"
SKIP = frozenset({
    "metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
    "transient", "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg",
})
GLUE = ("application/papermill.record/",)  # what myst-nb's glue displays
_BACKSPACE = re.compile(r"[^\n]\b")
_CARRIAGE = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def _stream_text(text: str) -> str:
    old = None
    while old != text:  # a character followed by a backspace cancels out, as on a terminal
        old, text = text, _BACKSPACE.sub("", text)
    return _CARRIAGE.sub("", text)  # a carriage return not ending a line overwrites the line


def flatten(outputs, ignore=()) -> dict[str, list]:
    """``{field or MIME type: [values]}`` over a cell's outputs, streams joined by name; MIME types
    that start with a prefix in ``ignore`` are left out."""
    streams: dict[str, str] = {}
    rest = []
    for out in outputs or []:
        if out.get("output_type") == "stream":
            if out["name"] not in streams:
                rest.append(("stream", out["name"]))
                streams[out["name"]] = ""
            streams[out["name"]] += _text(out.get("text", ""))
        else:
            rest.append(("other", out))
    flat: dict[str, list] = defaultdict(list)
    for kind, out in rest:
        if kind == "stream":
            flat[out].append(_stream_text(streams[out]))
            continue
        for key, value in out.items():
            if key in SKIP:
                continue
            if key == "data":
                for mime, data in value.items():
                    if mime not in SKIP and not mime.startswith(tuple(ignore)):
                        flat[mime].append(_text(data) if isinstance(data, (str, list)) else data)
            else:
                flat[key].append(_text(value) if isinstance(value, (str, list)) else value)
    return dict(flat)


def difference(cell, committed, ignore=()) -> str | None:
    """None when ``cell`` printed what ``committed`` printed; else a readable account of how not."""
    here, ref = flatten(cell.get("outputs"), ignore), flatten(committed.get("outputs"), ignore)
    if here == ref:
        return None
    lines = []
    for key in sorted(set(here) | set(ref)):
        if here.get(key) != ref.get(key):
            lines.append(f"[{key}]\n--- committed\n{_show(ref.get(key))}\n--- here\n{_show(here.get(key))}")
    return "\n".join(lines)


def _show(values) -> str:
    if values is None:
        return "(no such output)"
    return "\n".join(str(v)[:3000] for v in values)


def checked_differences(executed_cells, committed_cells, ignore=()) -> list[str]:
    """One message per checked cell of ``executed_cells`` whose outputs differ from the commit.

    Cells are matched by id; a checked cell missing from the committed notebook is a difference.
    ``ignore``: MIME-type prefixes left out of the comparison (:data:`GLUE` in Colab).
    """
    ref = {c.get("id"): c for c in committed_cells}
    problems = []
    for cell in executed_cells:
        if cell.get("cell_type") != "code" or CHECK_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        cid = cell.get("id")
        if cid not in ref:
            problems.append(f"cell {cid}: not in the committed notebook")
            continue
        diff = difference(cell, ref[cid], ignore)
        if diff:
            problems.append(f"cell {cid} (checked) prints something else:\n{diff}\n"
                            f"--- its source\n{_text(cell.get('source', ''))[:1500]}")
    return problems


def count_checked(cells) -> int:
    return sum(c.get("cell_type") == "code" and CHECK_TAG in c.get("metadata", {}).get("tags", [])
               for c in cells)
