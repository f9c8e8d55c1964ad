"""The byte-level BPE tokenizer of the language models (Hugging Face ``tokenizers``).

Trained on the training split of :mod:`toymodel.text.corpus` with :data:`VOCAB_SIZE` tokens (one of
them the document separator :data:`EOS`), shipped as ``toymodel/data/lm_tokenizer.json``.
:func:`load_tokenizer` reads the shipped file offline. :func:`readable` shows a token with its
spaces and newlines made visible (``·`` for a space, ``⏎`` for a newline, ``→`` for a tab).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = [
    "VOCAB_SIZE",
    "EOS",
    "train_tokenizer",
    "load_tokenizer",
    "tokenizer_path",
    "readable",
    "token_strings",
    "encode",
]

VOCAB_SIZE = 2048
EOS = "<|endoftext|>"
FILE = "lm_tokenizer.json"


def tokenizer_path():
    """The shipped ``tokenizer.json`` (an importlib.resources Traversable)."""
    return resources.files("toymodel") / "data" / FILE


def train_tokenizer(texts, vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE of ``vocab_size`` tokens trained on ``texts`` (an iterable of strings)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not isinstance(vocab_size, int) or vocab_size < 257 + 1:
        raise ValueError(
            f"vocab_size must be an integer of at least 258 (256 bytes, EOS, one merge), "
            f"got {vocab_size!r}"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return tok


def load_tokenizer(path=None):
    """The shipped tokenizer (or the one at ``path``); works offline."""
    from tokenizers import Tokenizer

    if path is None:
        return Tokenizer.from_str(tokenizer_path().read_text(encoding="utf-8"))
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer.json at {path}")
    return Tokenizer.from_file(str(path))


def readable(text: str) -> str:
    """``text`` with spaces, newlines and tabs made visible."""
    return text.replace(" ", "·").replace("\n", "⏎").replace("\t", "→")


def token_strings(tok) -> list[str]:
    """The readable string of every token id, in id order."""
    return [
        readable(tok.decode([i], skip_special_tokens=False)) for i in range(tok.get_vocab_size())
    ]


def encode(tok, docs) -> list[int]:
    """The ids of ``docs`` (strings) concatenated, each followed by the :data:`EOS` token."""
    eos = tok.token_to_id(EOS)
    ids: list[int] = []
    for enc in tok.encode_batch(list(docs)):
        ids.extend(enc.ids)
        ids.append(eos)
    return ids
