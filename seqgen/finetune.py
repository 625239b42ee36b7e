"""Fine-tuning: a new run that starts from another model's weights (`seqgen train --init-from`).

The run is new in every other way: its own corpus, optimizer state, schedule and run directory.
The model keeps the base's shape; its tokenizer reads the new corpus with the base's settings,
and a text model's vocabulary grows by the characters the base never saw (`Tokenizer.extended`).
The checkpoint records the lineage: each base checkpoint's path, SHA-256, corpus and step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from . import checkpoint
from .checkpoint import MAX_LINEAGE
from .corpora import LABELS
from .errors import SeqgenError
from .tokenizers import Tokenizer

SHAPE = ("cell", "layers", "hidden", "embed", "residual")  # what the weights fix; dropout may change


@dataclass
class Base:
    """What a fine-tuning run takes from its base model."""

    model_options: dict  # ModelConfig's fields but vocab_size
    tokenizer: Tokenizer  # the base's, extended to the new corpus
    weights: dict[str, torch.Tensor]  # the base's state_dict, its vocabulary rows moved to the new ids
    lineage: list[dict]  # the base models, newest first: saved as the checkpoint's "lineage"
    added: str  # the characters the new corpus added to a text model's vocabulary


def base_model(ckpt: checkpoint.Checkpoint, corpus, options: dict, explicit: set, log=None) -> Base:
    """The base model of a checkpoint as read (`checkpoint.read`), made ready for `corpus`; one
    SeqgenError if a model of the other kind, a different shape (`options` given on the command
    line, `explicit`) or another tokenizer's settings are asked for."""
    net, base_tokenizer = checkpoint.build(ckpt)
    reads = base_tokenizer.reads
    if reads != corpus.kind:
        raise SeqgenError(f"--init-from {ckpt.path} is a {LABELS.get(reads, reads)} model; {corpus.spec} is a "
                          f"{LABELS.get(corpus.kind, corpus.kind)} corpus")
    config = asdict(net.config)
    for name in sorted(explicit & set(SHAPE)):
        if options[name] != config[name]:
            raise SeqgenError(f"--{name} {options[name]} conflicts with the base model's {config[name]}: "
                              "--init-from keeps its shape")
    settings = base_tokenizer.options()
    for name in sorted(explicit & settings.keys()):
        if options[name] != settings[name]:
            raise SeqgenError(f"--{name.replace('_', '-')} {options[name]} conflicts with the base model's "
                              f"{settings[name] if settings[name] != '' else 'none'}: --init-from reads the corpus as "
                              "its base did")
    tokenizer, ids = base_tokenizer.extended(corpus.new_tokenizer(settings, log=log))
    weights = _moved(net.state_dict(), torch.as_tensor(ids), tokenizer.vocab_size)
    model_options = {k: v for k, v in config.items() if k != "vocab_size"}
    if "dropout" in explicit:
        model_options["dropout"] = options["dropout"]
    new_ids = sorted(set(range(tokenizer.vocab_size)) - set(ids.tolist()))
    added = tokenizer.decode(new_ids) if new_ids else ""  # only a text model's vocabulary grows
    step, name = ckpt.meta.get("progress", {}).get("step"), ckpt.meta.get("corpus", {}).get("name")
    this = {"checkpoint": str(ckpt.path.resolve()), "sha256": ckpt.sha256, "corpus": name if isinstance(name, str) else None,
            "step": step if type(step) is int else None}
    lineage = [this, *ckpt.meta.get("lineage", [])][:MAX_LINEAGE]  # checked by checkpoint.read
    return Base(model_options, tokenizer, weights, lineage, added)


def _moved(weights: dict[str, torch.Tensor], ids: torch.Tensor, vocab_size: int) -> dict[str, torch.Tensor]:
    """The base's weights with each vocabulary row (the embedding's and the output layer's) at
    its token's new id (`ids`, (V_base,)). A new token starts as the mean of the base's rows: an
    input the model reads as an average character, and an output as likely as an average one,
    so it neither throws the state off nor takes probability from what the model knows."""
    moved = dict(weights)
    for name in ("embed.weight", "head.weight", "head.bias"):
        old = weights[name]  # (V_base, ...)
        new = old.mean(0, keepdim=True).repeat(vocab_size, *([1] * (old.dim() - 1)))  # (V, ...)
        new[ids] = old
        moved[name] = new
    return moved

