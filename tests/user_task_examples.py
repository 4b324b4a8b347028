"""The worked examples of a user task, written as a user would: files in a folder, code outside tdabench.

(a) a custom CNN trained by its own loop, saved as safetensors, with a `python:` data loader;
(b) a small Hugging Face BERT classifier saved with `save_pretrained` and a `datasets.DatasetDict`
    saved with `save_to_disk`, only its head and last encoder layer attributed;
a small tabular MLP (its factory in my_tabular.py, trained by tdabench) whose data comes from a CSV
file, a saved `datasets.Dataset` or a loader returning a `datasets.DatasetDict`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch
import yaml

CNN_MODULE = textwrap.dedent('''
    """A user's own CNN and data loader (scikit-learn's 8x8 digits)."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn


    def build_cnn(channels=4, n_classes=10):
        return nn.Sequential(nn.Conv2d(1, channels, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(channels * 3 * 3, n_classes))


    def load_digits_split():
        x, y = load_digits(return_X_y=True)
        x = torch.tensor(x / 16.0).reshape(-1, 1, 8, 8)
        return (x[:300], torch.tensor(y[:300])), (x[300:400], torch.tensor(y[300:400]))
''')

GOLD = {"further_training": {"optimizer": "sgd", "lr": 0.05, "batch_size": 32}, "horizons": [1, 3],
        "seeds": 2, "n_train_evaluated": 20, "n_test": 10}


def train_own_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> None:
    """A user's plain training loop (Adam, batches of 32), nothing from tdabench."""
    generator = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()


def write_cnn_example(folder: Path, epochs: int = 15) -> Path:
    """Example (a): my_cnn.py, final.safetensors and my-cnn.yaml in `folder`; returns the spec path.
    `folder` must be importable (on sys.path) for the factory and loader addresses."""
    from safetensors.torch import save_file

    (folder / "my_cnn.py").write_text(CNN_MODULE)
    namespace: dict = {}
    exec(compile(CNN_MODULE, "my_cnn.py", "exec"), namespace)
    torch.manual_seed(0)
    model = namespace["build_cnn"](channels=4).double()
    (x, y), _ = namespace["load_digits_split"]()
    train_own_loop(model, x, y, epochs, lr=0.01)
    save_file(model.state_dict(), str(folder / "final.safetensors"))
    spec = {"name": "my-cnn", "version": 1, "modality": "image",
            "data": {"source": "python:my_cnn:load_digits_split", "standardize": False},
            "model": {"factory": "my_cnn:build_cnn", "kwargs": {"channels": 4}, "weights": "final.safetensors"},
            "objective": {"loss": "cross-entropy"}, "gold_standard": GOLD}
    path = folder / "my-cnn.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def token_data(n: int, length: int, vocab: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (n, length), [PAD] = 0 after a random length; label 1 when token 7 occurs, with
    15 % of the labels flipped (so that the classifier does not saturate)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(n, length))
    lengths = rng.integers(4, length + 1, size=n)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    flip = rng.random(n) < 0.15
    return ids, ((ids == 7).any(1) ^ flip).astype(np.int64)


def write_hf_example(folder: Path, steps: int = 6) -> Path:
    """Example (b): model/ (save_pretrained), data/ (save_to_disk) and my-bert.yaml in `folder`."""
    import datasets
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2,
                                     pad_token_id=0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = transformers.BertForSequenceClassification(config)
    splits = {name: token_data(n, 12, 30, seed) for name, n, seed in (("train", 120, 1), ("test", 40, 2))}
    x, y = (torch.as_tensor(a) for a in splits["train"])
    forward = lambda ids: model(input_ids=ids, attention_mask=(ids != 0).long()).logits  # noqa: E731
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        for idx in torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(forward(x[idx]), y[idx]).backward()
            opt.step()
    model.save_pretrained(folder / "model")
    datasets.DatasetDict({name: datasets.Dataset.from_dict({"input_ids": ids.tolist(), "label": labels.tolist()})
                          for name, (ids, labels) in splits.items()}).save_to_disk(str(folder / "data"))
    spec = {"name": "my-bert", "version": 1, "modality": "text",
            "data": {"source": "hf-disk:data", "tokenizer": "given", "features": ["input_ids"], "label": "label"},
            "model": {"pretrained": "model", "attributed": ["classifier.*", "bert.encoder.layer.1.*"]},
            "objective": {"loss": "cross-entropy"},
            "gold_standard": GOLD | {"horizons": [1, 2], "n_train_evaluated": 12, "n_test": 8}}
    path = folder / "my-bert.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


TABULAR_MODULE = textwrap.dedent('''
    """A user's small MLP, and a loader that returns its data already split, as a DatasetDict."""
    import datasets
    import numpy as np
    from torch import nn


    def build_mlp(n_inputs=2, n_classes=2):
        return nn.Sequential(nn.Linear(n_inputs, 4), nn.Tanh(), nn.Linear(4, n_classes))


    def load_dataset_dict():
        rng = np.random.default_rng(5)
        split = {}
        for name, n in (("train", 24), ("test", 9)):
            a, c = rng.normal(size=n), rng.normal(size=n)
            split[name] = datasets.Dataset.from_dict({"a": a.tolist(), "c": c.tolist(),
                                                      "kind": (a + c > 0).astype(int).tolist()})
        return datasets.DatasetDict(split)
''')


def tabular_columns(n: int = 40, seed: int = 0) -> dict[str, list]:
    """Columns 'id', 'a', 'b', 'c' (numbers) and 'kind' (the label: 'cat' or 'dog', from a + c)."""
    rng = np.random.default_rng(seed)
    a, b, c = (np.round(rng.normal(size=n), 4) for _ in range(3))
    return {"id": list(range(n)), "a": a.tolist(), "b": b.tolist(), "c": c.tolist(),
            "kind": ["dog" if v > 0 else "cat" for v in a + c]}


def write_csv(path: Path, columns: dict[str, list]) -> None:
    names = list(columns)
    rows = zip(*(columns[n] for n in names))
    path.write_text("\n".join([",".join(names), *(",".join(map(str, r)) for r in rows)]) + "\n")


def write_tabular_example(folder: Path, source: str) -> Path:
    """my_tabular.py and my-table.yaml (features 'a' and 'c', label 'kind') in `folder`, reading
    `source`; the data files are the caller's. `folder` must be importable (on sys.path)."""
    (folder / "my_tabular.py").write_text(TABULAR_MODULE)
    spec = {"name": "my-table", "version": 1, "modality": "tabular",
            "data": {"source": source, "features": ["a", "c"], "label": "kind", "standardize": False,
                     "test_fraction": 0.25, "split_seed": 3},
            "model": {"factory": "my_tabular:build_mlp", "kwargs": {"n_inputs": 2}},
            "training": {"optimizer": "sgd", "lr": 0.1, "batch_size": 8, "epochs": 3},
            "objective": {"loss": "cross-entropy"},
            "gold_standard": GOLD | {"horizons": [1], "seeds": 1, "n_train_evaluated": 5, "n_test": 5}}
    path = folder / "my-table.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
