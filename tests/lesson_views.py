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
    import numpy as np

    model = lm.load_lm("two_layer")
    passage = lm.token_ids("held_out", tok)[5000:5030].astype(np.int64)
    from toymodel.text import tokenizer as T
    from toymodel.text import two_layer

    eos = tok.token_to_id(T.EOS)  # the lesson opens the view on its induction head
    rep = two_layer.repeated_random(model.cfg.d_vocab, eos, half=(model.cfg.n_ctx - 1) // 2, n=32)
    ind_head = two_layer.measure(model, rep).ind_head
    return model_attention_view(model, np.concatenate([passage, passage[:20]]),
                                names=lambda i: tok.decode([i]), head=model.cfg.n_heads + ind_head)
