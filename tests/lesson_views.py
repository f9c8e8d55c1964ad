"""The attention view each lesson shows, recomputed from the package with the lesson's own inputs.

One source for the unit tests (``tests/test_attention_view.py``, against the executed notebooks) and
the browser tests (``tests/browser/test_attention_view.py``, against the built pages).
"""

from __future__ import annotations

import functools


@functools.cache
def lesson_views() -> dict[str, object]:
    """``{notebook stem: AttentionView}`` for every lesson that shows a view."""
    import toymodel
    from toymodel import induction
    from toymodel.tasks import get_task
    from toymodel.text import lm
    from toymodel.text import tokenizer as T
    from toymodel.views.attention import attention_view, model_attention_view
    from toymodel.worked_example import run

    ex = run()
    task = get_task("max")
    examples, _ = task.make_batch(3, generator=10)
    example = induction.repeated_tokens(1, half_len=8, seed=2)
    tok = T.load_tokenizer()
    return {
        "01_worked_example": attention_view(ex.tokens, ex.pattern, head_names=["the head"],
                                            decimals=4),
        "02_one_layer_model": model_attention_view(toymodel.load_pretrained("max"), examples[0],
                                                   names={task.query_token: "q"}),
        "04_two_layers": model_attention_view(induction.load_induction_model(), example[0],
                                              names={induction.TASK.bos: "BOS"}),
        "05_language_one_layer": model_attention_view(
            lm.load_lm("one_layer"), lm.token_ids("held_out", tok)[1000:1048].astype("int64"),
            names=lambda i: tok.decode([i])),
        "06_language_two_layers": _recurring_passage_view(lm, tok, model_attention_view),
    }


def _recurring_passage_view(lm, tok, model_attention_view):
    """Lesson 06's view: the plain-text model on held-out code whose names recur, opened on the
    layer-1 head that the lesson's natural-text card picks as its induction head."""
    import numpy as np

    from toymodel.text import tokenizer as T
    from toymodel.text import two_layer

    model = lm.load_lm("two_layer_plain")
    held = lm.token_ids("held_out", tok)
    windows = two_layer.text_windows(held, n=1000, length=64)
    card = two_layer.natural_text_card(model, windows, held, tok.token_to_id(T.EOS))
    passage = held[1610:1672].astype(np.int64)
    return model_attention_view(model, passage, names=lambda i: tok.decode([i]),
                                head=model.cfg.n_heads + card.head)
