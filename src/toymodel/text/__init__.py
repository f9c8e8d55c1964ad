"""Language models trained on real text: corpus, tokenizer, training, and the per-head findings.

What lives here:

* :mod:`.corpus`    the pinned, sha256-checked download of real text (the Django sdist), its
  cleaning,
  near-duplicate removal, train/held-out split by document, and the token-id cache outside the repo.
* :mod:`.tokenizer` the byte-level BPE (Hugging Face ``tokenizers``) trained on the training split
  and
  shipped as ``toymodel/data/lm_tokenizer.json``; readable token strings.
* :mod:`.lm`        language-model configs, the seeded resumable training loop, shipped weights.
* :mod:`.findings`  per-head statistics the language lessons show (copying, OV promotions, bigrams,
  skip-trigrams with held-out tests).
* :mod:`.two_layer` the two-layer measurements: previous-token and induction heads, the loss on a
  repeated sequence, K-composition against its random baseline, and mean ablation.

Imports: this subpackage may import the core of ``toymodel`` (model, circuits, composition,
induction,
checkpoint) but nothing in the core imports it. Heavy libraries (``tokenizers``) are imported inside
functions only, so ``import toymodel`` stays light.
"""
