"""Does a two-layer language model meet issue 24's bar? Prints each criterion; exit 1 if one fails.

    python benchmarks/check_two_layer.py RUN        # a search run's last checkpoint
    python benchmarks/check_two_layer.py --shipped  # src/toymodel/data/lm_two_layer.safetensors

The bar, on ``EOS``, 50 random tokens (fewer in a short context), the same again
(``text.two_layer``): a layer-1 head with induction score >= 0.3; the loss on the second copy at
least 1 nat below the first; the induction head's largest K-composition score is with the best
previous-token head of layer 0 and above the random baseline; mean-ablating that head halves the
induction score and raises the second-copy loss by more than 1 nat, more than ablating any other
layer-0 head. The shipped model's tests (tests/test_text_two_layer.py) ask the same.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from toymodel.model import AttentionOnlyTransformer, ModelConfig  # noqa: E402
from toymodel.text import corpus, lm, two_layer  # noqa: E402
from toymodel.text import tokenizer as T  # noqa: E402


def load_run(name: str) -> AttentionOnlyTransformer:
    """The model of search run ``name`` at its last checkpoint (sizes read from the tensors)."""
    from safetensors.torch import load_file

    t = load_file(str(corpus.cache_dir() / "runs" / f"search-{name}-state.safetensors"))
    n_heads, d_model, d_head = t["model.blocks.0.attn.W_Q"].shape  # one block's own parameter
    n_layers = len({k.split(".")[2] for k in t if k.startswith("model.blocks.")})
    model = AttentionOnlyTransformer(ModelConfig(
        d_vocab=t["model.W_E"].shape[0], d_model=d_model, d_head=d_head, n_heads=n_heads,
        n_ctx=t["model.W_pos"].shape[0], n_layers=n_layers))
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(t[f"model.{n}"])
    return model.eval()


def check(model, eos: int) -> list[tuple[str, bool, str]]:
    half = min(50, (model.cfg.n_ctx - 1) // 2)
    rep = two_layer.repeated_random(model.cfg.d_vocab, eos, half=half, n=32)
    m = two_layer.measure(model, rep)
    a, b = int(m.previous_token[0].argmax()), m.ind_head
    out = two_layer.ablated(model, rep, layer=0, head=a)
    others = [two_layer.ablated(model, rep, layer=0, head=h)["loss_second"]
              for h in range(model.cfg.n_heads) if h != a]
    k = m.k_composition[:, b]
    return [
        ("induction score of the best layer-1 head >= 0.3", m.induction[1, b] >= 0.3,
         f"head 1.{b}: {m.induction[1, b]:.3f}"),
        ("second copy at least 1 nat below the first", m.loss_second <= m.loss_first - 1,
         f"{m.loss_first:.2f} -> {m.loss_second:.2f}"),
        ("its top K-composition is with the previous-token head, above baseline",
         int(k.argmax()) == a and k[a] > m.k_baseline,
         f"head 0.{a} (previous-token score {m.previous_token[0, a]:.2f}): {k[a]:.3f}, "
         f"top head 0.{int(k.argmax())}, baseline {m.k_baseline:.3f}"),
        ("ablating it halves the induction score", out["induction"][b] < 0.5 * m.induction[1, b],
         f"{m.induction[1, b]:.3f} -> {out['induction'][b]:.3f}"),
        ("ablating it costs > 1 nat on the second copy, more than any other head",
         out["loss_second"] > m.loss_second + 1 and max(others) < out["loss_second"],
         f"{m.loss_second:.2f} -> {out['loss_second']:.2f} (others at most {max(others):.2f})"),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?")
    ap.add_argument("--shipped", action="store_true")
    a = ap.parse_args(argv)
    if not a.shipped and not a.run:
        ap.error("give a search run's name or --shipped")
    model = lm.load_lm("two_layer") if a.shipped else load_run(a.run)
    eos = T.load_tokenizer().token_to_id(T.EOS)
    results = check(model, eos)
    for what, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}  {what}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
