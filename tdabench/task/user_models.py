"""The user's models: a factory's module, a Hugging Face classifier from a local folder, the user's
final weights, and the attributed parameters chosen by name pattern.

Weights load from safetensors, or from .pt/.pth with `torch.load(weights_only=True)`: never by
unpickling arbitrary objects.
"""

from __future__ import annotations

import fnmatch
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from tdabench.errors import TdabenchError
from tdabench.task.packages import require
from tdabench.task.spec import ModelSpec
from tdabench.task.text_models import additive_mask
from tdabench.task.user_code import call_user, load_object

Tensors = dict[str, torch.Tensor]


def factory_model(spec: ModelSpec) -> nn.Module:
    """`factory(**kwargs)`, which must return a torch.nn.Module."""
    model = call_user(load_object(spec.factory, "model.factory"), f"model.factory '{spec.factory}'", **spec.kwargs)
    if not isinstance(model, nn.Module):
        raise TdabenchError(f"model.factory '{spec.factory}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


class HFSequenceClassifier(nn.Module):
    """Token ids (B, L) → logits (B, n_labels) through a Hugging Face BERT-family classifier, with a
    4-D additive attention mask (0 for tokens, the dtype's minimum for padding) so that torch.func's
    vmap can trace it. Its submodules keep the Hugging Face names ('bert.…', 'classifier.…'), so
    the user's weights and name patterns apply unchanged. Dropout is not applied."""

    def __init__(self, hf_model: nn.Module) -> None:
        super().__init__()
        self.prefix = hf_model.base_model_prefix
        base = getattr(hf_model, self.prefix, None)
        if base is None or not hasattr(base, "embeddings") or not hasattr(getattr(base, "encoder", None), "layer") \
                or not hasattr(hf_model, "classifier"):
            raise TdabenchError(f"model.pretrained: {type(hf_model).__name__} is not a BERT-family sequence "
                                f"classifier (embeddings, encoder.layer, classifier)")
        self.add_module(self.prefix, base)
        self.classifier = hf_model.classifier
        self.pad_id = int(getattr(hf_model.config, "pad_token_id", None) or 0)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        base = getattr(self, self.prefix)
        hidden = base.embeddings(input_ids=input_ids)
        mask = additive_mask(input_ids != self.pad_id, hidden.dtype)
        for layer in base.encoder.layer:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
        pooled = base.pooler(hidden) if getattr(base, "pooler", None) is not None else hidden[:, 0]
        return self.classifier(pooled)


def hf_model(spec: ModelSpec, n_outputs: int) -> nn.Module:
    """The classifier saved in `spec.pretrained` (local files only, dropout off, eager attention)."""
    transformers = require("transformers", "model kind 'hf'")
    transformers.logging.set_verbosity_error()
    folder = Path(spec.pretrained)
    if not (folder / "config.json").is_file():
        raise TdabenchError(f"model.pretrained: {folder} is not a folder saved with save_pretrained (no config.json)")
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True, hidden_dropout_prob=0.0,
                                                     attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    config._attn_implementation = "eager"
    if config.num_labels != n_outputs:
        raise TdabenchError(f"model.pretrained: the classifier has {config.num_labels} labels, the data "
                            f"{n_outputs} classes")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, config=config,
                                                                            local_files_only=True)
    return HFSequenceClassifier(model.eval())


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _refused_global(err: Exception) -> str:
    """What torch's weights-only unpickler refused ('Unsupported global: GLOBAL io.open'), from
    its many-line message."""
    found = re.search(r"Unsupported global: GLOBAL \S+|Unsupported operand \S+", str(err))
    return found.group(0) if found else _one_line(err)[:200]


def read_weights(path: str, what: str = "model.weights") -> Tensors:
    """A state dict from .safetensors, or from .pt/.pth with torch.load(weights_only=True)."""
    file = Path(path)
    if not file.is_file():
        raise TdabenchError(f"{what}: no such file {file}")
    try:
        if file.suffix == ".safetensors":
            return dict(require("safetensors.torch", what).load_file(str(file)))
        state = torch.load(file, map_location="cpu", weights_only=True)
    except TdabenchError:
        raise
    except pickle.UnpicklingError as err:
        raise TdabenchError(f"{what}: {file} holds pickled objects other than tensors ({_refused_global(err)}), "
                            f"which tdabench refuses to unpickle; save a state dict of tensors "
                            f"(torch.save(model.state_dict(), path)) or a .safetensors file") from None
    except Exception as err:
        raise TdabenchError(f"{what}: cannot read {file} ({type(err).__name__}: {_one_line(err)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TdabenchError(f"{what}: {file} must hold a state dict (parameter name → tensor)")
    return state


def load_weights(model: nn.Module, state: Tensors, what: str) -> None:
    """Load `state` into `model` (cast to its dtype); names and shapes must match exactly."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise TdabenchError(f"{what}: the weights do not fit the model: missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]} (of {len(missing)} and {len(unexpected)})")
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if wrong:
        raise TdabenchError(f"{what}: tensor '{wrong[0]}' has shape {tuple(state[wrong[0]].shape)} in the file, "
                            f"{tuple(own[wrong[0]].shape)} in the model")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def attributed_names(model: nn.Module, patterns: tuple[str, ...]) -> list[str]:
    """The names of the attributed parameters: every parameter matching a pattern (all when none);
    a pattern that matches nothing is an error naming some parameters."""
    names = [name for name, _ in model.named_parameters()]
    if not patterns:
        return names
    for pattern in patterns:
        if not fnmatch.filter(names, pattern):
            raise TdabenchError(f"model.attributed: pattern '{pattern}' matches no parameter; the parameters "
                                f"are named like: {', '.join(names[:4])}, …, {names[-1]}")
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
