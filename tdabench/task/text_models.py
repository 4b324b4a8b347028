"""Transformer classifiers that work under torch.func (functional_call, vmap, per-sample grad).

Hugging Face BERT's own forward builds its attention mask in ways vmap cannot trace, so these
wrappers call the embedding, encoder layers and pooler directly, with a 4-D additive mask
(0 for tokens, −1e4·… for [PAD]) computed from the input. Dropout is off: paired runs of the gold
standard must be deterministic functions of their seed.
"""

from __future__ import annotations

import torch
from torch import nn

from tdabench.progress import bar
from tdabench.task.packages import require
from tdabench.task.text import PAD_ID, minilm_dir

MINILM_LAYERS = 6


def additive_mask(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """keep (B, L) of 1/0 → (B, 1, 1, L): 0 where kept, the dtype's minimum where masked."""
    return (1.0 - keep.to(dtype))[:, None, None, :] * torch.finfo(dtype).min


def _quiet_transformers():
    transformers = require("transformers", "text models")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def bert_config(vocab_size: int, width: int, layers: int, heads: int, max_length: int):
    """A small BERT config trained from scratch: FFN 4×width, no dropout, eager attention."""
    transformers = _quiet_transformers()
    config = transformers.BertConfig(
        vocab_size=vocab_size, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * width, max_position_embeddings=max_length, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, pad_token_id=PAD_ID)
    config._attn_implementation = "eager"
    return config


class BertClassifier(nn.Module):
    """Token ids (B, L) → logits (B, n_outputs): BERT encoder, then a linear head on [CLS]."""

    def __init__(self, config, n_outputs: int) -> None:
        super().__init__()
        transformers = _quiet_transformers()
        bert = transformers.BertModel(config, add_pooling_layer=False)
        self.embeddings, self.layers = bert.embeddings, bert.encoder.layer
        self.classifier = nn.Linear(config.hidden_size, n_outputs)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(input_ids=input_ids)
        mask = additive_mask(input_ids != PAD_ID, hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, mask)
        return self.classifier(hidden[:, 0])


def load_minilm():
    """The pretrained MiniLM (BertModel, 6 layers, width 384), no dropout, eager attention."""
    transformers = _quiet_transformers()
    path = minilm_dir()
    config = transformers.BertConfig.from_pretrained(path, hidden_dropout_prob=0.0,
                                                     attention_probs_dropout_prob=0.0)
    config._attn_implementation = "eager"
    return transformers.BertModel.from_pretrained(path, config=config, local_files_only=True).eval()


def mean_pool(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The mean of the hidden states over the kept (non-[PAD]) tokens: (B, L, d), (B, L) → (B, d).
    all-MiniLM-L6-v2 was trained as a sentence encoder with this pooling."""
    keep = keep.to(hidden.dtype)[..., None]
    return (hidden * keep).sum(-2) / keep.sum(-2).clamp(min=1.0)


class MiniLMTail(nn.Module):
    """The fine-tuned part of MiniLM: its last `k` encoder layers, the pooler's dense + tanh layer
    applied to the mean-pooled sentence embedding, and a new linear head.

    Input: for k = 0 the frozen sentence embedding (B, 384); for k > 0 the frozen hidden states
    with the attention mask as an extra last channel (B, L, 384 + 1). Output: logits (B, n_outputs).
    """

    def __init__(self, minilm, k: int, n_outputs: int, init_seed: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(list(minilm.encoder.layer)[MINILM_LAYERS - k:]) if k else nn.ModuleList()
        self.pooler = minilm.pooler
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            self.classifier = nn.Linear(minilm.config.hidden_size, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.layers) == 0:
            return self.classifier(self.pooler.activation(self.pooler.dense(x)))
        hidden, keep = x[..., :-1], x[..., -1]
        mask = additive_mask(keep, hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, mask)
        return self.classifier(self.pooler.activation(self.pooler.dense(mean_pool(hidden, keep))))


@torch.no_grad()
def minilm_features(input_ids: torch.Tensor, frozen_layers: int, batch_size: int = 128) -> torch.Tensor:
    """Run MiniLM's embeddings and first `frozen_layers` layers once: the inputs of MiniLMTail."""
    minilm = load_minilm()
    outs = []
    with bar(len(input_ids), "MiniLM features (frozen layers, once per data set)", "text") as progress:
        for ids in torch.split(input_ids, batch_size):
            hidden = minilm.embeddings(input_ids=ids)
            keep = (ids != PAD_ID)
            mask = additive_mask(keep, hidden.dtype)
            for layer in list(minilm.encoder.layer)[:frozen_layers]:
                hidden = layer(hidden, mask)
            outs.append(mean_pool(hidden, keep) if frozen_layers == MINILM_LAYERS
                        else torch.cat([hidden, keep[..., None].to(hidden.dtype)], dim=-1))
            progress.update(len(ids))
    return torch.cat(outs)
